// A library that dlopens another by name, found only through this library's own RUNPATH ($ORIGIN/dep): the
// test of Phantom's interposed dlopen keeping the caller's search path (tests/tests/e2e/profile.rs).
#include <dlfcn.h>
#include <stdio.h>
int open_dep(void) {
  void* h = dlopen("libphantom_runpath_dep.so", RTLD_NOW);
  printf("dlopen=%s\n", h ? "ok" : dlerror());
  return h != NULL;
}
