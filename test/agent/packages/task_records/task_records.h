/* Test package: the record task_records' iterator writes, as libbpf-bootstrap's task_iter does. */
#define REC_COMM_LEN 16

struct task_rec {
	int pid;
	int ppid;
	char comm[REC_COMM_LEN];
};
