/* Test package: the record is a typedef of an anonymous struct, declared only here. */
#define EV_COMM_LEN 16

typedef struct {
	__u32 pid;
	__u16 family;
	__u16 port;
	unsigned __int128 addr;
	char comm[EV_COMM_LEN];
	__u64 kstack[4];
} exec_event_t;
