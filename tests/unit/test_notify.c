/* SPDX-License-Identifier: Apache-2.0 */
/* test_notify.c — the sd_notify layer, with this test playing systemd: it
 * binds the datagram socket systemd would, points NOTIFY_SOCKET (and
 * WATCHDOG_USEC/WATCHDOG_PID) at it in its own environment, calls the
 * notify_* functions and reads what arrives, with the sender's credentials.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "test.h"

static char dir[64], sockpath[96];

/* Bind the socket at ADDR ("/path" or "@abstract"); -1 on failure. */
static int bind_notify(const char *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(addr);
    memcpy(sa.sun_path, addr, n);
    if (addr[0] == '@')
        sa.sun_path[0] = 0;                   /* abstract namespace */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] != '@'));
    int one = 1;
    struct timeval tv = { .tv_sec = 2 };      /* a missing message fails, never hangs */
    if (bind(fd, (struct sockaddr *)&sa, len) || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One datagram into buf (NUL-terminated); the sender's pid into *pid.
 * Returns its length, or -1 (nothing within the timeout). */
static int recv_msg(int fd, char *buf, size_t len, pid_t *pid)
{
    char cbuf[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = { buf, len - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0)
        return -1;
    buf[n] = 0;
    *pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            *pid = uc.pid;
        }
    return (int)n;
}

/* Nothing more queued? */
static int queue_empty(int fd)
{
    char b[16];
    return recv(fd, b, sizeof b, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

TEST(silent_without_notify_socket)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CHECK(notify_ready() == 0);
    CHECK(notify_status("x %d", 1) == 0);
    CHECK(notify_reloading() == 0);
    CHECK(notify_watchdog() == 0);
    CHECK(notify_stopping() == 0);
    CHECK(notify_watchdog_usec() == 0);
}

static void session(const char *addr)
{
    int fd = bind_notify(addr);
    CHECKF(fd >= 0, "bind %s: %s", addr, strerror(errno));
    if (fd < 0)
        return;
    setenv("NOTIFY_SOCKET", addr, 1);
    char buf[1024];
    pid_t pid;

    CHECK(notify_ready() > 0);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "READY=1"));
    CHECKF(pid == getpid(), "sender pid %d, we are %d", (int)pid, (int)getpid());

    CHECK(notify_status("%u streams, %.1f windows/s, %llu dropped", 3u, 35.25, 7ULL) > 0);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0);
    CHECKF(!strcmp(buf, "STATUS=3 streams, 35.2 windows/s, 7 dropped"), "%s", buf);

    CHECK(notify_watchdog() > 0);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "WATCHDOG=1"));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(notify_reloading() > 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0);
    unsigned long long us = 0;
    CHECKF(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &us) == 1, "%s", buf);
    unsigned long long lo = (unsigned long long)t0.tv_sec * 1000000ULL + (unsigned long long)t0.tv_nsec / 1000;
    unsigned long long hi = (unsigned long long)t1.tv_sec * 1000000ULL + (unsigned long long)t1.tv_nsec / 1000;
    CHECKF(us >= lo && us <= hi, "MONOTONIC_USEC %llu not in [%llu, %llu]", us, lo, hi);

    CHECK(notify_ready() > 0);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "READY=1"));
    CHECK(notify_stopping() > 0);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "STOPPING=1"));
    CHECK(queue_empty(fd));
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

TEST(messages_on_a_path_socket) { session(sockpath); }

TEST(messages_on_an_abstract_socket)
{
    char addr[64];
    snprintf(addr, sizeof addr, "@trident-test-notify-%d", (int)getpid());
    session(addr);
}

TEST(watchdog_usec)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_USEC", "3000000", 1);
    unsetenv("WATCHDOG_PID");
    CHECK(notify_watchdog_usec() == 3000000);       /* WATCHDOG_USEC alone: enabled */
    setenv("WATCHDOG_PID", pid, 1);
    CHECK(notify_watchdog_usec() == 3000000);
    setenv("WATCHDOG_PID", "1", 1);                 /* meant for another process */
    CHECK(notify_watchdog_usec() == 0);
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", "0", 1);                /* off */
    CHECK(notify_watchdog_usec() == 0);
    setenv("WATCHDOG_USEC", "junk", 1);
    CHECK(notify_watchdog_usec() == 0);
    /* the environment stays for later calls: nothing unset it */
    setenv("WATCHDOG_USEC", "500000", 1);
    CHECK(notify_watchdog_usec() == 500000);
    CHECK(notify_watchdog_usec() == 500000);
    CHECK(getenv("WATCHDOG_USEC") != NULL);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Pings prove progress: none while work is pending and nothing moves. */
TEST(watchdog_pings_only_on_progress)
{
    char addr[64];
    snprintf(addr, sizeof addr, "@trident-test-wd-%d", (int)getpid());
    int fd = bind_notify(addr);
    REQUIRE(fd >= 0);
    setenv("NOTIFY_SOCKET", addr, 1);
    char buf[256];
    pid_t pid;
    struct notify_wd wd;
    const uint64_t t0 = 1000000000, P = 1000000;   /* a 1 s watchdog */
    notify_wd_init(&wd, P, t0);
    CHECK(notify_wd_timeout_ms(&wd) == 250);
    CHECK(notify_wd_tick(&wd, t0 + 100000, 5, false) == 0);      /* not due yet */
    CHECK(notify_wd_tick(&wd, t0 + 300000, 5, false) == 1);      /* progress: ping */
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "WATCHDOG=1"));
    CHECK(notify_wd_tick(&wd, t0 + 400000, 9, false) == 0);      /* too soon after a ping */
    CHECK(notify_wd_tick(&wd, t0 + 600000, 9, false) == 1);      /* moved since the ping */
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "WATCHDOG=1"));
    /* stuck with work pending: no ping, however long we wait */
    for (uint64_t t = t0 + 700000; t < t0 + 5 * P; t += 50000)
        CHECK(notify_wd_tick(&wd, t, 9, false) == 0);
    CHECK(queue_empty(fd));
    CHECK(wd.pings == 2);
    /* idle (nothing to do) is healthy */
    CHECK(notify_wd_tick(&wd, t0 + 5 * P, 9, true) == 1);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0 && !strcmp(buf, "WATCHDOG=1"));
    /* and progress again resumes the pings */
    CHECK(notify_wd_tick(&wd, t0 + 6 * P, 10, false) == 1);
    CHECK(recv_msg(fd, buf, sizeof buf, &pid) > 0);
    CHECK(queue_empty(fd));

    /* watchdog off: ticks never send, the loop may sleep forever */
    notify_wd_init(&wd, 0, t0);
    CHECK(notify_wd_timeout_ms(&wd) == -1);
    CHECK(notify_wd_tick(&wd, t0 + 10 * P, 1, true) == 0);
    CHECK(queue_empty(fd));
    /* a huge period caps the sleep at a minute */
    notify_wd_init(&wd, 3600ULL * P, t0);
    CHECK(notify_wd_timeout_ms(&wd) == 60000);
    CHECK(notify_now_us() > 0);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

TEST(unreachable_socket_is_an_error_not_a_crash)
{
    char addr[128];
    snprintf(addr, sizeof addr, "%s/nobody-listens", dir);
    setenv("NOTIFY_SOCKET", addr, 1);
    int rc = notify_ready();
    CHECKF(rc < 0, "rc=%d", rc);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/trident-notify-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sockpath, sizeof sockpath, "%s/notify", dir);
    RUN(silent_without_notify_socket);
    RUN(messages_on_a_path_socket);
    RUN(messages_on_an_abstract_socket);
    RUN(watchdog_usec);
    RUN(watchdog_pings_only_on_progress);
    RUN(unreachable_socket_is_an_error_not_a_crash);
    unlink(sockpath);
    rmdir(dir);
    return TEST_END();
}
