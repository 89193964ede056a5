"""Frozen networks (teacher, VQGAN) and where their weights came from."""
import types


def _stay_in_eval(net, mode=True):
    return net


def freeze(net):
    """eval mode for good (stochastic depth or dropout in a teacher would make its targets random),
    no gradients for its parameters."""
    net.eval()
    net.requires_grad_(False)
    net.train = types.MethodType(_stay_in_eval, net)
    return net


def checkpoint_source(opt, network_key):
    """What `path:` says to load into `network_<label>`: path, param key and strictness."""
    label = network_key[len('network_'):]
    path_opt = opt['path']
    return {
        'path': path_opt.get(f'pretrain_{network_key}'),
        'param_key': path_opt.get(f'param_key_{label}', 'params'),
        'strict': path_opt.get(f'strict_load_{label}', True),
    }


def path_rewritten_by_resume(opt, network_key):
    """BasicSR's `check_resume` points every `pretrain_network_*` at `net_<label>_<iter>.pth` unless
    the network is listed in `ignore_resume_networks`; frozen networks are never saved there."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return bool(opt['path'].get('resume_state')) and network_key not in ignored
