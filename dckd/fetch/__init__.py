"""`dckd-fetch`: the pretrained files and data archives a run needs, downloaded and verified."""
