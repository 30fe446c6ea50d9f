/* Test package: user-space C beside the BPF source (no BPF sections): not compiled. */
int main(void) { return 0; }
