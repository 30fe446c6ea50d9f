/* The record of cut_records: a header, then as much of buf as was filled (sent cut to that). */
#define CUT_BUF 256

struct cut_rec {
	__u32 pid;
	__u32 len;
	char comm[16];
	__u32 data_len;
	__u8 data[16]; /* bytes holding text, up to data_len: shown as text */
	char buf[CUT_BUF];
};
