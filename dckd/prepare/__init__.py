"""`dckd-prepare <family> ...`: public data sets -> BasicSR LMDBs / folders, checked afterwards."""
