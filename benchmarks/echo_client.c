/* Load generator for benchmarks/bench_echo.py: drives an echo server on loopback.
 *
 *   echo_client HOST PORT CONNECTIONS SIZE SECONDS pingpong|blast
 *
 * pingpong: every connection sends SIZE bytes, waits for all of them to come back,
 *           and repeats; prints the number of round trips completed.
 * blast:    every connection writes SIZE-byte blocks whenever the socket takes them
 *           and reads whatever comes back; prints the number of bytes echoed back.
 *
 * Counting starts after a one-second warm-up. Written for evtrio's benchmarks; one
 * epoll loop, non-blocking sockets, no threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent;     /* pingpong: bytes of the current message sent */
    size_t received; /* pingpong: bytes of the current echo received */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int ep;

/* Watch for writability only while a ping-pong message is partly sent (no busy loop). */
static void watch(struct conn *c, int want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

/* Send the rest of the current ping-pong message. */
static void send_rest(struct conn *c, const char *out, size_t size) {
    ssize_t w = send(c->fd, out + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) die("send");
    if (w > 0) c->sent += (size_t)w;
    watch(c, c->sent < size);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE SECONDS pingpong|blast\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), nconn = atoi(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double seconds = atof(argv[5]);
    int blast = strcmp(argv[6], "blast") == 0;

    char *out = malloc(size), *in = malloc(1 << 20);
    if (!out || !in) die("malloc");
    memset(out, 'e', size);

    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct conn *conns = calloc(nconn, sizeof *conns);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
        if (!blast) send_rest(&conns[i], out, size);
    }

    double start = now(), counting_from = start + 1.0, end = counting_from + seconds;
    unsigned long long done = 0;
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (t >= end) break;
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        int counting = now() >= counting_from;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) {
                if (blast) {
                    ssize_t w = send(c->fd, out, size, MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN) die("send");
                } else if (c->sent < size) {
                    send_rest(c, out, size);
                }
            }
            if (events[i].events & EPOLLIN) {
                ssize_t r;
                while ((r = recv(c->fd, in, 1 << 20, 0)) > 0) {
                    if (blast) {
                        if (counting) done += (unsigned long long)r;
                    } else {
                        c->received += (size_t)r;
                        if (c->received >= size) {
                            if (counting) done++;
                            c->received = 0;
                            c->sent = 0;
                            send_rest(c, out, size);
                        }
                    }
                }
                if (r == 0) {
                    fprintf(stderr, "server closed a connection\n");
                    return 1;
                }
                if (r < 0 && errno != EAGAIN) die("recv");
            }
        }
    }
    printf("%llu\n", done);
    return 0;
}
