"""The ground every dckd package stands on: what the library (`dckd_arch`, `dckd_losses`,
`dckd_data`, `dckd_models`) and the commands (`dckd`) share, importing neither.

- `compat`: makes BasicSR importable on current torchvision and Python; installed on import of
  this package, so on import of any dckd package (worker processes included, which import afresh);
- `registry`: registration into BasicSR's registries, with a clear error on name clashes;
- `schema`: typed option declarations and their one-line errors;
- `checkpoint`: safe loading and atomic saving of checkpoints;
- `random_states`: capture and restore of every random generator;
- `codebook`: a VQGAN codebook's distances, for the VQGAN's nearest codes and DMM's assignments;
- `basicsr_versions`: what differs between the BasicSR releases dckd supports;
- `known_files`: the published files a run may need, where they go and where they come from.
"""
from dckd_utils import compat

compat.install()
