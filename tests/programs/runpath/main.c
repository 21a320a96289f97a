int open_dep(void);
int main(void) { return open_dep() ? 0 : 1; }
