/* SPDX-License-Identifier: Apache-2.0 */
/* trident_sub.c — trident-sub: subscribe to a trident publisher and print
 * every message's JSON object as one line on stdout.
 *
 *   trident-sub [--count N] [ENDPOINT] [TOPIC…]
 *
 * ENDPOINT defaults to tcp://127.0.0.1:5556; with no TOPIC every stream (and
 * "_stats") is received.  A topic is a prefix of stream names, as for any
 * ZeroMQ SUB socket.  Each line is flushed, so a pipe consumer sees it live.
 * Exit: 0 (--count reached, SIGINT, SIGTERM), 64 usage or bad endpoint,
 * 1 a receive error.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE_ = 64, SLICE_MS = 200 };

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: trident-sub [--count N] [ENDPOINT] [TOPIC...]\n"
            "Print each message of a trident publisher as one JSON line.\n"
            "\n"
            "  ENDPOINT    ZeroMQ endpoint to connect to (default " DEFAULT_ENDPOINT ")\n"
            "  TOPIC       stream-name prefix to receive (default: everything)\n"
            "  --count N   exit after N messages\n"
            "  --help      this text\n"
            "  --version   print the version\n");
}

/* Receive one frame into msg; 1 with more frames following, 0 last, -1 stop
 * or error (errno set; 0 on stop). */
/* Set once a message came; until then, after HINT_MS, one hint on stderr. */
#define HINT_MS 5000
static bool any_message;

static int recv_frame(void *sock, zmq_msg_t *msg, const char *endpoint)
{
    unsigned waited_ms = 0;
    for (;;) {
        if (stop) {
            errno = 0;
            return -1;
        }
        if (zmq_msg_recv(msg, sock, 0) >= 0) {
            any_message = true;
            return zmq_msg_more(msg);
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (!any_message && waited_ms < HINT_MS && (waited_ms += SLICE_MS) >= HINT_MS)
            fprintf(stderr, "trident-sub: no messages yet from %s (is tridentd running and "
                    "publishing there? the topics subscribed to may also be quiet)\n", endpoint);
    }
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL;
    const char **topics = calloc((size_t)argc, sizeof *topics);
    unsigned n_topics = 0;
    unsigned long long count = 0, got = 0;
    int rc = EX_OK;

    if (!topics) {
        fprintf(stderr, "trident-sub: out of memory\n");
        return EX_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            free(topics);
            return EX_OK;
        } else if (strcmp(a, "--version") == 0) {
            printf("trident-sub %s\n", TRIDENT_VERSION);
            free(topics);
            return EX_OK;
        } else if (strcmp(a, "--count") == 0 || strncmp(a, "--count=", 8) == 0) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            if (!v) {
                fprintf(stderr, "trident-sub: --count needs a number\n");
                free(topics);
                return EX_USAGE_;
            }
            errno = 0;
            count = strtoull(v, &end, 10);
            if (errno || end == v || *end || count == 0 || v[0] == '-') {
                fprintf(stderr, "trident-sub: --count '%s': not a positive integer\n", v);
                free(topics);
                return EX_USAGE_;
            }
        } else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (!endpoint)
                    endpoint = argv[i];
                else
                    topics[n_topics++] = argv[i];
            }
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "trident-sub: unknown option '%s' (try --help)\n", a);
            free(topics);
            return EX_USAGE_;
        } else if (!endpoint) {
            endpoint = a;
        } else {
            topics[n_topics++] = a;
        }
    }
    if (!endpoint)
        endpoint = DEFAULT_ENDPOINT;

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int slice = SLICE_MS, linger = 0;
    if (!sock) {
        fprintf(stderr, "trident-sub: cannot create a ZeroMQ socket: %s\n", zmq_strerror(errno));
        free(topics);
        return EX_FAIL;
    }
    /* Receive in slices so a signal is seen even if libzmq retries the
     * interrupted wait; never linger at exit: a SUB has nothing to flush. */
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &slice, sizeof slice);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "trident-sub: cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
        rc = EX_USAGE_;
        goto out;
    }
    if (n_topics == 0)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    for (unsigned i = 0; i < n_topics; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));

    zmq_msg_t topic, body, extra;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    zmq_msg_init(&extra);
    while (!count || got < count) {
        int more = recv_frame(sock, &topic, endpoint);
        if (more < 0)
            break;
        if (!more) {
            fprintf(stderr, "trident-sub: skipped a message of 1 frame (expected topic and JSON)\n");
            continue;
        }
        more = recv_frame(sock, &body, endpoint);
        if (more < 0)
            break;
        if (more) {
            /* Drain the rest of the message so the next one starts clean. */
            unsigned frames = 2;
            while (more > 0) {
                more = recv_frame(sock, &extra, endpoint);
                frames++;
            }
            if (more < 0)
                break;
            fprintf(stderr, "trident-sub: skipped a message of %u frames (expected 2)\n", frames);
            continue;
        }
        fwrite(zmq_msg_data(&body), 1, zmq_msg_size(&body), stdout);
        putc('\n', stdout);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "trident-sub: writing stdout: %s\n", strerror(errno));
            rc = EX_FAIL;
            break;
        }
        got++;
    }
    if (errno && !stop && (count == 0 || got < count) && rc == EX_OK) {
        fprintf(stderr, "trident-sub: receiving from %s: %s\n", endpoint, zmq_strerror(errno));
        rc = EX_FAIL;
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    zmq_msg_close(&extra);
out:
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(topics);
    return rc;
}
