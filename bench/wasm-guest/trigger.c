// The benchmark's trigger: getppid() in a loop until killed (each call makes the producer write
// a batch of records), paced so the ring is never the limit: at most `rate` calls per second.
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long per_ms = argc > 1 ? atol(argv[1]) / 1000 : 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned long n = 0;; n++) {
		syscall(SYS_getppid);
		if (per_ms > 0 && n % per_ms == 0) {
			for (;;) {
				clock_gettime(CLOCK_MONOTONIC, &now);
				long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
				if ((unsigned long)ms * per_ms >= n)
					break;
				usleep(200);
			}
		}
	}
}
