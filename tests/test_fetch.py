"""dckd-fetch, offline: every download comes from a local HTTP server this file starts, which
serves byte ranges as real servers do and can cut a connection halfway."""
import hashlib
import http.server
import io
import os
import threading
import zipfile

import pytest
import torch
import yaml

import dckd_utils.known_files as known
from dckd.fetch import cli
from dckd.fetch.download import DownloadError, download
from dckd.fetch.fetching import fetch_known
from dckd_utils.known_files import Known
from dckd_utils.schema import OptionError
from conftest import edsr
from test_models import make_opt


class Server:
    """Files by URL path; `cut[path] = n`: the next response for it stops after n bytes."""

    def __init__(self):
        self.files, self.cut, self.requests = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                server.requests.append((self.path, self.headers.get('Range')))
                if body is None:
                    self.send_error(404)
                    return
                start = int(self.headers['Range'][len('bytes='):].rstrip('-')) if self.headers.get('Range') else 0
                self.send_response(206 if start else 200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(body) - start))
                self.end_headers()
                stop = server.cut.pop(self.path, len(body))
                self.wfile.write(body[start:stop])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f'http://127.0.0.1:{self.httpd.server_port}{path}'

    def bytes_sent(self, path):
        return [rng for p, rng in self.requests if p == path]


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def test_a_fetch_shows_progress_and_appears_only_complete(server, tmp_path, capfd):
    server.files['/model.pth'] = os.urandom(300_000)
    destination = str(tmp_path / 'models' / 'model.pth')
    download(server.url('/model.pth'), destination, sha256=hashlib.sha256(server.files['/model.pth']).hexdigest()[:8])
    assert open(destination, 'rb').read() == server.files['/model.pth']
    assert os.listdir(tmp_path / 'models') == ['model.pth']  # no .partial left
    assert '100%' in capfd.readouterr().err  # tqdm's bar


def test_a_cut_connection_is_resumed_from_where_it_stopped(server, tmp_path):
    body = os.urandom(400_000)
    server.files['/model.pth'], server.cut['/model.pth'] = body, 150_000
    destination = str(tmp_path / 'model.pth')
    download(server.url('/model.pth'), destination, progress=False)
    assert open(destination, 'rb').read() == body
    assert server.bytes_sent('/model.pth') == [None, 'bytes=150000-']  # the rest only, not everything again


def test_a_later_call_resumes_the_partial_file(server, tmp_path):
    body = os.urandom(400_000)
    server.files['/model.pth'], server.cut['/model.pth'] = body, 100_000
    destination = str(tmp_path / 'model.pth')
    with pytest.raises(DownloadError, match=r'the 100000 bytes received are kept in .*model.pth.partial'):
        download(server.url('/model.pth'), destination, attempts=1, progress=False)
    assert not os.path.exists(destination) and os.path.getsize(destination + '.partial') == 100_000
    download(server.url('/model.pth'), destination, progress=False)
    assert open(destination, 'rb').read() == body and not os.path.exists(destination + '.partial')
    assert server.bytes_sent('/model.pth') == [None, 'bytes=100000-']


def test_a_checksum_mismatch_is_an_error_and_leaves_nothing(server, tmp_path):
    server.files['/EDSR_Lx4-76ee1c8f.pth'] = b'not the published file'
    destination = str(tmp_path / 'EDSR_Lx4-76ee1c8f.pth')
    with pytest.raises(DownloadError, match=r'sha256 .* does not start with the published 76ee1c8f.*Nothing was kept'):
        download(server.url('/EDSR_Lx4-76ee1c8f.pth'), destination, sha256='76ee1c8f', progress=False)
    assert os.listdir(tmp_path) == []


def test_a_web_page_instead_of_the_file_is_refused(tmp_path, monkeypatch):
    page = Server()
    page.files['/uc'] = b'<html>Google Drive can not scan this file for viruses</html>'
    handler = page.httpd.RequestHandlerClass
    send_header = handler.send_header
    handler.send_header = lambda self, k, v: send_header(self, k, 'text/html' if k == 'Content-Type' else v)
    try:
        with pytest.raises(DownloadError, match='answered with a web page.*by hand'):
            download(page.url('/uc'), str(tmp_path / 'x.pth'), progress=False)
    finally:
        page.httpd.shutdown()


# ----- known files: verified against the network the options build ------------------------------


@pytest.fixture
def options_file(tmp_path, monkeypatch):
    """make_opt's DCKD run as an options file in tmp_path, which is the current folder."""
    monkeypatch.chdir(tmp_path)
    opt = make_opt(tmp_path)
    for key in ('is_train', 'dist', 'rank', 'world_size'):
        del opt[key]
    opt['datasets'] = {}
    path = tmp_path / 'run.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path), opt


def entry_for(server, name, file, body, check):
    server.files[f'/{name}'] = body
    return Known(name, file, 'a test server', url=server.url(f'/{name}'), check=check)


def test_a_file_of_another_network_is_an_error_naming_the_key_and_is_removed(server, tmp_path, options_file):
    path, opt = options_file
    other = edsr(32, 2, 2)  # the options' teacher has 16 channels
    buffer = io.BytesIO()
    torch.manual_seed(0)
    from basicsr.archs import build_network
    torch.save({'params': build_network(other).state_dict()}, buffer)
    entry = entry_for(server, 'teacher', 'fetched/teacher.pth', buffer.getvalue(), (path, 'network_t'))
    with pytest.raises(OptionError, match=r'teacher: the downloaded file is not the expected network, so it was '
                                          r'removed: .*fetched/teacher.pth does not fit network_t \(EDSR\): other '
                                          r'shapes: \[.conv_first.weight'):
        fetch_known(entry)
    assert not os.path.exists('fetched/teacher.pth') and not os.path.exists('fetched/teacher.pth.partial')


def test_for_an_options_file_fetches_exactly_the_missing_files(server, tmp_path, options_file, monkeypatch, capsys):
    path, opt = options_file
    teacher, vqgan = opt['path']['pretrain_network_t'], opt['path']['pretrain_network_vqgan']
    teacher_bytes = open(teacher, 'rb').read()
    os.remove(teacher)  # missing; the VQGAN file is there
    entries = {'teacher_x2': entry_for(server, 'teacher_x2', os.path.relpath(teacher), teacher_bytes, None),
               'vqgan': entry_for(server, 'vqgan', os.path.relpath(vqgan), open(vqgan, 'rb').read(), None)}
    monkeypatch.setattr(known, 'KNOWN', entries)
    cli.main(['--for', path])
    out = capsys.readouterr().out.splitlines()
    assert out == [f'fetched  teacher_x2: {os.path.relpath(teacher)}', f'present  vqgan: {vqgan}']
    assert [p for p, _ in server.requests] == ['/teacher_x2']
    assert open(teacher, 'rb').read() == teacher_bytes


def test_a_missing_file_no_source_knows_is_named(tmp_path, options_file, capsys):
    path, opt = options_file
    os.remove(opt['path']['pretrain_network_t'])
    with pytest.raises(SystemExit) as stop:
        cli.main(['--for', path])
    assert stop.value.code == 1
    assert 'by hand  network_t: ' in capsys.readouterr().out


def test_a_file_no_script_can_fetch_names_its_page_and_is_verified_once_placed(tmp_path, options_file, monkeypatch,
                                                                               capsys):
    path, opt = options_file
    teacher = opt['path']['pretrain_network_t']
    entry = Known('rcan_x2', 'placed/RCAN_BIX2_basicsr.pth', 'a README', page='https://example.org/rcan#test',
                  check=(path, 'network_t'))
    monkeypatch.setattr(known, 'KNOWN', {'rcan_x2': entry})
    with pytest.raises(SystemExit):
        cli.main(['rcan_x2'])
    assert capsys.readouterr().out.strip() == ('by hand  rcan_x2: no script can fetch it; get it from '
                                               'https://example.org/rcan#test and put it at placed/RCAN_BIX2_basicsr.pth'
                                               '. Then dckd-fetch rcan_x2 verifies it.')
    os.makedirs('placed')
    with open('placed/RCAN_BIX2_basicsr.pth', 'wb') as f:
        f.write(b'truncated')
    with pytest.raises(SystemExit, match='cannot load checkpoint .*RCAN_BIX2_basicsr.pth'):
        cli.main(['rcan_x2'])
    assert os.path.exists('placed/RCAN_BIX2_basicsr.pth')  # the user's file: reported, never removed
    os.replace(teacher, 'placed/RCAN_BIX2_basicsr.pth')
    cli.main(['rcan_x2'])
    assert 'present  rcan_x2: placed/RCAN_BIX2_basicsr.pth (verified)' in capsys.readouterr().out


def test_a_data_archive_is_unpacked_for_dckd_prepare(server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, 'w') as z:
        for i in (1, 2):
            z.writestr(f'DIV2K_train_HR/000{i}.png', b'png bytes')
    server.files['/DIV2K_train_HR.zip'] = archive.getvalue()
    entry = Known('div2k', f'{known.DOWNLOADS}/DIV2K_train_HR.zip', 'a test server',
                  url=server.url('/DIV2K_train_HR.zip'), unpack='DIV2K_train_HR',
                  then='dckd-prepare div2k datasets/downloads/DIV2K_train_HR')
    monkeypatch.setattr(known, 'KNOWN', {'div2k': entry})
    cli.main(['data', 'div2k'])
    assert capsys.readouterr().out.strip() == ('fetched  div2k: datasets/downloads/DIV2K_train_HR.zip; next: '
                                               'dckd-prepare div2k datasets/downloads/DIV2K_train_HR')
    assert sorted(os.listdir('datasets/downloads/DIV2K_train_HR')) == ['0001.png', '0002.png']


# ----- the table itself ---------------------------------------------------------------------------


def test_every_teacher_and_vqgan_the_shipped_options_name_is_known():
    """What `dckd-train` needs for each shipped training file has a dckd-fetch entry, and each entry
    is checked against an options file that exists (or, for torchvision's files, its network)."""
    from conftest import PROJECT_ROOT
    named = set()
    for folder, _, files in os.walk(os.path.join(PROJECT_ROOT, 'options', 'train')):
        for name in files:
            with open(os.path.join(folder, name)) as f:
                opt = yaml.safe_load(f)
            path = opt.get('path', {})
            named |= {path.get('pretrain_network_t'), path.get('pretrain_network_vqgan'),
                      (opt.get('network_t') or {}).get('path')}
    named.discard(None)
    assert [file for file in sorted(named) if known.known_at(file) is None] == []
    for entry in known.MODELS:
        assert bool(entry.check) != bool(entry.torchvision), entry.name  # one way to verify it
        assert entry.torchvision or os.path.isfile(os.path.join(PROJECT_ROOT, entry.check[0])), entry.name
        assert (entry.url or entry.drive_id or entry.page) and entry.source


def test_zoo_checksums_are_the_suffix_of_their_file_names():
    for entry in known.MODELS:
        if entry.sha256:
            assert entry.destination.endswith(f'-{entry.sha256}.pth') and len(entry.sha256) == 8


def test_a_placed_file_with_another_checksum_is_reported_and_kept(tmp_path, options_file, monkeypatch):
    path, opt = options_file
    entry = Known('edsr_l_x2', 'placed/EDSR_Lx2-be38e77d.pth', 'a zoo', url='http://127.0.0.1:9/x', sha256='be38e77d',
                  check=(path, 'network_t'))
    monkeypatch.setattr(known, 'KNOWN', {'edsr_l_x2': entry})
    os.makedirs('placed')
    os.replace(opt['path']['pretrain_network_t'], entry.destination)  # the right network, not the published bytes
    with pytest.raises(SystemExit, match=r'placed/EDSR_Lx2-be38e77d.pth is not the published file \(its sha256 does '
                                         r'not start with be38e77d\)'):
        cli.main(['edsr_l_x2'])
    assert os.path.exists(entry.destination)


def test_a_file_of_torchvisions_zoo_is_verified_against_the_torchvision_network(server, tmp_path, monkeypatch):
    """As vgg19 (PerceptualLoss's weights) is, here with torchvision's small SqueezeNets."""
    import torchvision
    monkeypatch.chdir(tmp_path)

    def zoo_file(name):
        buffer = io.BytesIO()
        torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), buffer)
        return buffer.getvalue()

    server.files['/squeezenet.pth'] = zoo_file('squeezenet1_0')
    entry = Known('squeezenet', 'zoo/squeezenet.pth', 'a test server', url=server.url('/squeezenet.pth'),
                  torchvision='squeezenet1_0')
    assert fetch_known(entry) == 'fetched  squeezenet: zoo/squeezenet.pth'
    assert fetch_known(entry) == 'present  squeezenet: zoo/squeezenet.pth (verified)'
    server.files['/other.pth'] = zoo_file('squeezenet1_1')  # the same keys, other shapes
    other = Known('other', 'zoo/other.pth', 'a test server', url=server.url('/other.pth'), torchvision='squeezenet1_0')
    with pytest.raises(OptionError, match=r"other: the downloaded file is not the expected network, so it was removed: "
                                          r"zoo/other.pth is not torchvision's squeezenet1_0: keys or shapes differ"):
        fetch_known(other)
    assert not os.path.exists('zoo/other.pth')


def test_vgg19_is_torchvisions_file_at_the_path_basicsr_reads():
    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
    entry = known.KNOWN['vgg19']
    assert entry.destination == VGG_PRETRAIN_PATH and entry.torchvision == 'vgg19'
    assert entry.url.endswith(os.path.basename(VGG_PRETRAIN_PATH)) and entry.sha256 == 'dcbb9e9d'
