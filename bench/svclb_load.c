// The service-lb benchmark's load: a backend server and a new-connection client, in C so the
// paths' differences are not hidden behind a slow client.
//
//   svclb_load server TCP_PORT UDP_PORT THREADS
//       TCP: accept, read the request, answer, wait for the client's close; UDP: echo.
//   svclb_load client tcp|udp SECONDS ADDRFILE
//       ADDRFILE: "IP PORT" per line. For SECONDS, each round takes a random address: TCP
//       connect + one request + read the answer + close; UDP a fresh socket, one datagram, its
//       reply, close. Prints "ok N fail M". The client closes with a reset (SO_LINGER 0), so
//       no end keeps TIME_WAIT state: otherwise a NATed path (iptables, nftables) trips over
//       the server's TIME_WAIT (its SYN carries timestamps offset by the VIP, not the backend,
//       and PAWS drops it until a retransmit), which measures TCP, not the rules.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int tcp_fd, udp_fd;
static const char RESP[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void *tcp_loop(void *arg)
{
	(void)arg;
	char buf[512];
	for (;;) {
		int c = accept(tcp_fd, NULL, NULL);
		if (c < 0)
			continue;
		if (read(c, buf, sizeof buf) > 0 && write(c, RESP, sizeof RESP - 1) == sizeof RESP - 1)
			while (read(c, buf, sizeof buf) > 0) /* until the client's reset or FIN */
				;
		close(c);
	}
	return NULL;
}

static void *udp_loop(void *arg)
{
	(void)arg;
	char buf[512];
	struct sockaddr_in from;
	for (;;) {
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(udp_fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n > 0)
			sendto(udp_fd, "ok", 2, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static int server(int tport, int uport, int threads)
{
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	tcp_fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_port = htons(tport);
	if (bind(tcp_fd, (struct sockaddr *)&a, sizeof a) || listen(tcp_fd, 4096)) {
		perror("tcp");
		return 1;
	}
	udp_fd = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_port = htons(uport);
	if (bind(udp_fd, (struct sockaddr *)&a, sizeof a)) {
		perror("udp");
		return 1;
	}
	pthread_t t;
	for (int i = 0; i < threads; i++)
		pthread_create(&t, NULL, tcp_loop, NULL);
	pthread_create(&t, NULL, udp_loop, NULL);
	printf("ready\n");
	fflush(stdout);
	pause();
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int client(int udp, double seconds, const char *file)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		perror(file);
		return 1;
	}
	size_t cap = 1024, n = 0;
	struct sockaddr_in *addrs = malloc(cap * sizeof *addrs);
	char ip[64];
	int port;
	while (fscanf(f, "%63s %d", ip, &port) == 2) {
		if (n == cap)
			addrs = realloc(addrs, (cap *= 2) * sizeof *addrs);
		memset(&addrs[n], 0, sizeof addrs[n]);
		addrs[n].sin_family = AF_INET;
		addrs[n].sin_port = htons(port);
		inet_pton(AF_INET, ip, &addrs[n].sin_addr);
		n++;
	}
	fclose(f);
	if (!n)
		return 1;
	unsigned seed = (unsigned)getpid();
	long ok = 0, fail = 0;
	char buf[512];
	struct timeval tv = { .tv_sec = 1 };
	double end = now() + seconds;
	while (now() < end) {
		for (int k = 0; k < 64; k++) {
			struct sockaddr_in *to = &addrs[rand_r(&seed) % n];
			int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
			if (s < 0) {
				fail++;
				continue;
			}
			int good = 0;
			if (udp) {
				setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
				if (sendto(s, "q", 1, 0, (struct sockaddr *)to, sizeof *to) == 1 && recv(s, buf, sizeof buf, 0) == 2)
					good = 1;
			} else {
				setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
				if (connect(s, (struct sockaddr *)to, sizeof *to) == 0 &&
				    write(s, "GET / HTTP/1.0\r\n\r\n", 18) == 18) {
					ssize_t r, total = 0;
					while (total < (ssize_t)sizeof RESP - 1 && (r = read(s, buf, sizeof buf)) > 0)
						total += r;
					good = total == (ssize_t)sizeof RESP - 1;
				}
				struct linger lg = { .l_onoff = 1, .l_linger = 0 };
				setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			}
			close(s);
			if (good)
				ok++;
			else
				fail++;
		}
	}
	printf("ok %ld fail %ld\n", ok, fail);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(!strcmp(argv[2], "udp"), atof(argv[3]), argv[4]);
	fprintf(stderr, "usage: svclb_load server TCP_PORT UDP_PORT THREADS | client tcp|udp SECONDS ADDRFILE\n");
	return 2;
}
