int phantom_runpath_dep(void) { return 42; }
