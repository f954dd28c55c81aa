/* SPDX-License-Identifier: Apache-2.0 */
/* test_config.c — the config module: defaults, a valid file, every error
 * class with file, line and key, @include, the committed example file, and
 * the documentation generated from the key table.
 *
 * Runs from the repository root (tests/run.sh does); config/trident.conf and
 * packaging/trident.conf.5 are read from there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

/* libconfig 1.5's scanner leaks on some malformed input (TESTING.md): that
 * is not ours to fix, and our own leaks are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libconfig_yy\n"; }

static char tmpdir[64];

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int ch;
    while ((ch = fgetc(f)) != EOF)
        fputc(ch, m);
    fclose(m);
    fclose(f);
    return buf;
}

TEST(defaults)
{
    struct cfg c;
    REQUIRE(cfg_defaults(&c) == 0);
    CHECK(c.workers == 0);
    CHECK(c.hwm == 10000);
    CHECK(!c.to_stdout);
    CHECK(c.stats_interval == 10.0);
    REQUIRE(c.n_endpoints == 1);
    CHECK(!strcmp(c.endpoints[0], "tcp://127.0.0.1:5556"));
    REQUIRE(c.model);
    CHECK(strstr(c.model, "/cwru.safetensors") != NULL);
    CHECK(c.n_streams == 0 && !c.streams && !c.file);
    char err[256];
    CHECKF(cfg_validate(&c, err, sizeof err) == 0, "%s", err);

    struct cfg_stream s;
    REQUIRE(cfg_stream_defaults(&s, CFG_ALSA) == 0);
    CHECK(s.type == CFG_ALSA && s.hop == 1024 && s.channels == 1);
    CHECK(s.format && !strcmp(s.format, "S16_LE"));
    CHECK(s.pace == CFG_PACE_REALTIME && !s.loop && s.rt_priority == 0);
    CHECK(!s.name && !s.device && !s.path && !s.n_channel_names);
    /* the command line builds streams this way; validate refuses a nameless one */
    s.name = strdup("x");
    s.device = strdup("hw:0");
    s.rate = 8000;
    REQUIRE(cfg_add_stream(&c, &s) == 0);
    CHECKF(cfg_validate(&c, err, sizeof err) == 0, "%s", err);
    REQUIRE(cfg_add_stream(&c, &s) == 0);
    CHECK(cfg_validate(&c, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "duplicate") && strstr(err, "\"x\""), "%s", err);
    c.n_streams--;
    cfg_stream_free(&c.streams[1]);
    c.hwm = -5;
    CHECK(cfg_validate(&c, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "publish.hwm"), "%s", err);
    cfg_stream_free(&s);
    cfg_free(&c);
    cfg_free(&c); /* twice is harmless */
}

static const char valid_conf[] =
    "# a valid config\n"
    "model = \"models/m.safetensors\";\n"
    "workers = 3;\n"
    "publish = { endpoints = [ \"tcp://127.0.0.1:7000\", \"ipc:///tmp/t.ipc\" ];\n"
    "  hwm = 50; stdout = true; stats_interval = 5; };\n"
    "streams = (\n"
    "  { name = \"bearing\"; type = \"alsa\"; device = \"hw:1,0\"; rate = 12000;\n"
    "    channels = 2; format = \"S24_LE\"; hop = 512; period = 256L; buffer = 4096;\n"
    "    rt_priority = 50; channel_names = [ \"drive\", \"fan\" ]; },\n"
    "  { name = \"bench\"; type = \"file\"; path = \"rec.wav\"; pace = \"fast\";\n"
    "    loop = true; },\n"
    "  { name = \"abs\"; type = \"file\"; path = \"/data/x.flac\" }\n"
    ");\n";

TEST(valid_file)
{
    const char *p = write_file("valid.conf", valid_conf);
    REQUIRE(p);
    struct cfg c = { 0 };
    char err[512] = "";
    int rc = cfg_load(p, &c, err, sizeof err);
    REQUIRE(rc == 0);
    CHECK(c.file && !strcmp(c.file, p));
    char want[256];
    snprintf(want, sizeof want, "%s/models/m.safetensors", tmpdir);
    CHECKF(!strcmp(c.model, want), "model=%s", c.model);
    CHECK(c.workers == 3 && c.hwm == 50 && c.to_stdout);
    CHECK(c.stats_interval == 5.0); /* an integer where a number is expected */
    REQUIRE(c.n_endpoints == 2);
    CHECK(!strcmp(c.endpoints[1], "ipc:///tmp/t.ipc"));
    REQUIRE(c.n_streams == 3);
    const struct cfg_stream *a = &c.streams[0], *f = &c.streams[1], *g = &c.streams[2];
    CHECK(a->type == CFG_ALSA && !strcmp(a->name, "bearing") && !strcmp(a->device, "hw:1,0"));
    CHECK(a->rate == 12000 && a->channels == 2 && !strcmp(a->format, "S24_LE"));
    CHECK(a->hop == 512 && a->period == 256 && a->buffer == 4096 && a->rt_priority == 50);
    CHECK(a->line == 7);
    REQUIRE(a->n_channel_names == 2);
    char buf[128];
    cfg_channel_name(a, 1, buf, sizeof buf);
    CHECKF(!strcmp(buf, "bearing/fan"), "%s", buf);
    CHECK(f->type == CFG_FILE && f->pace == CFG_PACE_FAST && f->loop && f->hop == 1024);
    snprintf(want, sizeof want, "%s/rec.wav", tmpdir);
    CHECKF(!strcmp(f->path, want), "path=%s", f->path);
    CHECK(f->line == 10);
    CHECK(!strcmp(g->path, "/data/x.flac") && g->pace == CFG_PACE_REALTIME && !g->loop);
    /* a file stream's name depends on the file's channel count, which the
     * file source passes in a copy (source_file.c): NAME for a mono file */
    struct cfg_stream g2 = *g;
    g2.channels = 1;
    cfg_channel_name(&g2, 0, buf, sizeof buf);
    CHECKF(!strcmp(buf, "abs"), "%s", buf);
    g2.channels = 2;
    cfg_channel_name(&g2, 1, buf, sizeof buf);
    CHECKF(!strcmp(buf, "abs/1"), "%s", buf);
    CHECK(cfg_find_stream(&c, "bench") == 1 && cfg_find_stream(&c, "nope") == -1);

    /* copy and compare, as a reload does */
    struct cfg d;
    REQUIRE(cfg_copy(&d, &c) == 0);
    CHECK(d.streams[0].name != c.streams[0].name);
    for (unsigned i = 0; i < 3; i++)
        CHECK(cfg_stream_equal(&c.streams[i], &d.streams[i]));
    CHECK(!cfg_stream_equal(&c.streams[0], &c.streams[1]));
    d.streams[0].line = 99; /* position in the file does not matter */
    CHECK(cfg_stream_equal(&c.streams[0], &d.streams[0]));
    d.streams[0].hop = 256;
    CHECK(!cfg_stream_equal(&c.streams[0], &d.streams[0]));
    d.streams[0].hop = 512;
    REQUIRE(cfg_set_string(&d.streams[0].channel_names[1], "fan2") == 0);
    CHECK(!cfg_stream_equal(&c.streams[0], &d.streams[0]));
    CHECKF(cfg_validate(&d, err, sizeof err) == 0, "%s", err);

    /* the summary for --check names every stream */
    char *sum = NULL;
    size_t sl = 0;
    FILE *m = open_memstream(&sum, &sl);
    cfg_print_summary(&c, m);
    fclose(m);
    CHECKF(strstr(sum, "bearing/drive") && strstr(sum, "bench") && strstr(sum, "abs"), "%s", sum);
    free(sum);

    /* loading over a live config replaces it; a failure leaves it untouched */
    const char *bad = write_file("bad.conf", "workers = 1;\nstreams = ( { name = \"x\"; } );\n");
    CHECK(cfg_load(bad, &d, err, sizeof err) == -EINVAL);
    CHECK(d.n_streams == 3 && d.workers == 3 && d.streams[0].hop == 512);
    const char *good = write_file("good.conf", "workers = 1;\n");
    CHECK(cfg_load(good, &d, err, sizeof err) == 0);
    CHECK(d.n_streams == 0 && d.workers == 1 && d.hwm == 10000);
    cfg_free(&d);
    cfg_free(&c);
}

/* The command line overrides the file, and is applied again after a reload. */
TEST(command_line_overrides)
{
    const char *p = write_file("cli.conf", "workers = 3;\npublish = { hwm = 7; stats_interval = 2; };\n"
                                           "model = \"/m\";\n");
    REQUIRE(p);
    struct cfg c = { 0 };
    char err[512] = "";
    REQUIRE(cfg_load(p, &c, err, sizeof err) == 0);
    struct cfg_cli none = CFG_CLI_UNSET;
    CHECKF(cfg_apply_cli(&c, &none, err, sizeof err) == 0, "%s", err);
    CHECK(c.workers == 3 && c.hwm == 7 && c.stats_interval == 2.0 && !strcmp(c.model, "/m"));
    CHECK(c.n_endpoints == 1 && !c.to_stdout);

    const char *eps[] = { "ipc:///run/trident/a", "tcp://*:6000" };
    struct cfg_cli o = CFG_CLI_UNSET;
    o.model = "/other.safetensors";
    o.workers = 0;
    o.endpoints = eps;
    o.n_endpoints = 2;
    o.to_stdout = 1;
    o.stats_interval = 0;
    o.wait_subscribers = 2;
    CHECKF(cfg_apply_cli(&c, &o, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(c.model, "/other.safetensors") && c.workers == 0 && c.to_stdout);
    CHECK(c.stats_interval == 0 && c.wait_subscribers == 2 && c.hwm == 7);
    REQUIRE(c.n_endpoints == 2);
    CHECK(!strcmp(c.endpoints[1], "tcp://*:6000") && c.endpoints[1] != eps[1]);

    /* reload: the file again, the same overrides again */
    REQUIRE(cfg_load(p, &c, err, sizeof err) == 0);
    CHECK(c.workers == 3);
    CHECKF(cfg_apply_cli(&c, &o, err, sizeof err) == 0, "%s", err);
    CHECK(c.workers == 0 && c.n_endpoints == 2);

    /* out of range on the command line: refused, naming the key */
    o.workers = 9999;
    CHECK(cfg_apply_cli(&c, &o, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "workers") && strstr(err, "between"), "%s", err);
    cfg_free(&c);

    /* --replay: defaults plus streams made on the command line */
    REQUIRE(cfg_defaults(&c) == 0);
    struct cfg_stream s;
    REQUIRE(cfg_stream_defaults(&s, CFG_FILE) == 0);
    s.name = strdup("x");
    s.path = strdup("dir1/x.wav");
    s.pace = CFG_PACE_FAST;
    REQUIRE(cfg_add_stream(&c, &s) == 0);
    REQUIRE(cfg_set_string(&s.path, "dir2/x.wav") == 0);
    REQUIRE(cfg_add_stream(&c, &s) == 0);
    o = (struct cfg_cli)CFG_CLI_UNSET;
    CHECK(cfg_apply_cli(&c, &o, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "stream \"x\"") && strstr(err, "duplicate"), "%s", err);
    cfg_stream_free(&s);
    cfg_free(&c);
}

struct bad_case {
    const char *text;
    int         line;
    const char *key;     /* must appear in the message */
    const char *also;    /* and this, if set */
};

static const struct bad_case bad_cases[] = {
    /* syntax */
    { "workers = 2;\nmodel = ;\n", 2, "", "syntax" },
    { "workers = 2;\nworkers = 3;\n", 2, "", "duplicate" },
    /* unknown keys, at every level */
    { "workers = 2;\nfoo = 1;\n", 2, "foo", "unknown" },
    { "publish = {\n  hwmm = 3;\n};\n", 2, "publish.hwmm", "unknown" },
    { "streams = ( { name = \"a\"; type = \"file\"; path = \"x\";\n  colour = \"red\"; } );\n",
      2, "streams[0].colour", "unknown" },
    /* wrong types */
    { "\nworkers = 0.75;\n", 2, "workers", "integer" },
    { "workers = \"2\";\n", 1, "workers", "integer" },
    { "model = 3;\n", 1, "model", "string" },
    { "publish = { stdout = 1; };\n", 1, "publish.stdout", "true or false" },
    { "publish = { stats_interval = \"10\"; };\n", 1, "publish.stats_interval", "number" },
    { "publish = { endpoints = [ 1, 2 ]; };\n", 1, "publish.endpoints[0]", "must be a string" },
    { "publish = { endpoints = ( \"tcp://*:1\",\n 2 ); };\n", 2, "publish.endpoints[1]", "string" },
    { "publish = 3;\n", 1, "publish", "group" },
    { "streams = { };\n", 1, "streams", "list" },
    { "streams = ( 3 );\n", 1, "streams[0]", "group" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"hw:0\";\n rate = 8000.5; } );\n",
      2, "streams[0].rate", "integer" },
    { "streams = ( { name = \"a\"; type = \"file\"; path = \"x\"; loop = \"yes\"; } );\n",
      1, "streams[0].loop", "true or false" },
    /* out of range */
    { "\n\nworkers = 1000;\n", 3, "workers", "between 0 and 256" },
    { "publish = {\n hwm = -1;\n};\n", 2, "publish.hwm", "between" },
    { "publish = { stats_interval = -0.5; };\n", 1, "publish.stats_interval", "between" },
    { "streams = ( { name = \"a\"; type = \"file\"; path = \"x\";\n hop = 0; } );\n", 2,
      "streams[0].hop", "between" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1;\n"
      "  rt_priority = 100; } );\n", 2, "streams[0].rt_priority", "between" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1;\n"
      "  channels = 65; } );\n", 2, "streams[0].channels", "between" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 99999999999L; } );\n",
      1, "streams[0].rate", "between" },
    { "model = \"\";\n", 1, "model", "empty" },
    /* bad enumerations */
    { "streams = ( { name = \"a\"; type = \"jack\"; } );\n", 1, "streams[0].type", "\"jack\"" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1;\n"
      "  format = \"S8\"; } );\n", 2, "streams[0].format", "\"S8\"" },
    { "streams = ( { name = \"a\"; type = \"file\"; path = \"x\";\n pace = \"slow\"; } );\n", 2,
      "streams[0].pace", "\"slow\"" },
    /* missing required keys (the line of the stream) */
    { "streams = (\n { name = \"a\"; type = \"file\"; } );\n", 2, "streams[0].path", "missing" },
    { "streams = (\n { name = \"a\"; type = \"alsa\"; device = \"hw:0\"; } );\n", 2,
      "streams[0].rate", "missing" },
    { "streams = (\n { name = \"a\"; type = \"alsa\"; rate = 8000; } );\n", 2,
      "streams[0].device", "missing" },
    { "streams = (\n { name = \"a\"; path = \"x\"; } );\n", 2, "streams[0].type", "missing" },
    { "streams = (\n { type = \"file\"; path = \"x\"; } );\n", 2, "streams[0].name", "missing" },
    /* a key of the other stream type */
    { "streams = ( { name = \"a\"; type = \"file\"; path = \"x\";\n device = \"hw:0\"; } );\n",
      2, "streams[0].device", "alsa" },
    { "streams = ( { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1;\n loop = true; } );\n",
      2, "streams[0].loop", "file" },
    /* names */
    { "streams = (\n { name = \"a\"; type = \"file\"; path = \"x\"; },\n"
      " { name = \"a\"; type = \"file\"; path = \"y\"; } );\n", 3, "streams[1].name",
      "duplicate" },
    { "streams = (\n { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1; channels = 2; },\n"
      " { name = \"a/1\"; type = \"file\"; path = \"y\"; } );\n", 3, "\"a/1\"", "clashes" },
    { "streams = (\n { name = \"a\"; type = \"file\"; path = \"y\"; },\n"
      " { name = \"b\"; type = \"alsa\"; device = \"d\"; rate = 1; } );\n"
      "streams2 = 1;\n", 4, "streams2", "unknown" },
    { "streams = (\n { name = \"m\"; type = \"file\"; path = \"x\"; },\n"
      " { name = \"m/7\"; type = \"file\"; path = \"y\"; } );\n", 3, "\"m/7\"", "clashes" },
    { "streams = (\n { name = \"p/q\"; type = \"file\"; path = \"x\"; },\n"
      " { name = \"p\"; type = \"file\"; path = \"y\";\n channel_names = [ \"q\" ]; } );\n", 4,
      "streams[1].channel_names", "clashes" },
    { "streams = (\n { name = \"a\"; type = \"alsa\"; device = \"d\"; rate = 1; channels = 2;\n"
      "   channel_names = [ \"x\" ]; } );\n", 3, "streams[0].channel_names", "1 names for 2" },
    { "streams = (\n { name = \"a\"; type = \"file\"; path = \"d\";\n"
      "   channel_names = [ \"x\", \"x\" ]; } );\n", 3, "streams[0].channel_names", "twice" },
    { "streams = (\n { name = \"_stats\"; type = \"file\"; path = \"d\"; } );\n", 2,
      "streams[0].name", "reserved" },
    /* cross-key rules of the globals */
    { "publish = {\n endpoints = [ ];\n};\n", 2, "publish.endpoints", "nowhere" },
};

TEST(errors_name_file_line_key)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        const char *p = write_file("bad.conf", b->text);
        REQUIRE(p);
        struct cfg c = { 0 };
        char err[512] = "";
        int rc = cfg_load(p, &c, err, sizeof err);
        CHECKF(rc == -EINVAL, "case %zu: rc=%d", i, rc);
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s:%d: ", p, b->line);
        CHECKF(!strncmp(err, prefix, strlen(prefix)), "case %zu: want \"%s\", got \"%s\"", i,
               prefix, err);
        CHECKF(strstr(err, b->key) != NULL, "case %zu: key \"%s\" not in \"%s\"", i, b->key,
               err);
        CHECKF(!b->also || strstr(err, b->also), "case %zu: \"%s\" not in \"%s\"", i, b->also,
               err);
        CHECK(!strchr(err, '\n'));
        CHECK(c.n_streams == 0 && c.model == NULL); /* untouched */
        cfg_free(&c);
    }
}

TEST(missing_file)
{
    struct cfg c = { 0 };
    char err[512] = "", path[128];
    snprintf(path, sizeof path, "%s/does-not-exist.conf", tmpdir);
    CHECK(cfg_load(path, &c, err, sizeof err) == -ENOENT);
    CHECKF(strstr(err, path) && strstr(err, "No such file"), "%s", err);
    /* a directory is not a config file */
    int rc = cfg_load(tmpdir, &c, err, sizeof err);
    CHECKF(rc < 0, "rc=%d", rc);
    CHECKF(strstr(err, tmpdir), "%s", err);
}

TEST(include_is_relative_to_the_config)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/conf.d", tmpdir);
    mkdir(sub, 0755);
    REQUIRE(write_file("conf.d/streams.conf",
                       "streams = ( { name = \"inc\"; type = \"file\"; path = \"r.wav\"; } );\n"));
    REQUIRE(write_file("conf.d/bad.conf", "model = \"m\";\n\nhwm = 3;\n"));
    const char *p = write_file("main.conf", "workers = 2;\n@include \"conf.d/streams.conf\"\n");
    REQUIRE(p);
    /* the working directory (the repository) has no conf.d/: only the
     * config's directory can resolve it */
    struct cfg c = { 0 };
    char err[512] = "";
    int rc = cfg_load(p, &c, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    REQUIRE(rc == 0);
    CHECK(c.workers == 2);
    REQUIRE(c.n_streams == 1);
    CHECK(!strcmp(c.streams[0].name, "inc"));
    /* relative paths inside are relative to the main config's directory */
    char want[256];
    snprintf(want, sizeof want, "%s/r.wav", tmpdir);
    CHECKF(!strcmp(c.streams[0].path, want), "%s", c.streams[0].path);
    cfg_free(&c);

    /* an error in an included file names that file and its line */
    p = write_file("main.conf", "workers = 2;\n@include \"conf.d/bad.conf\"\n");
    CHECK(cfg_load(p, &c, err, sizeof err) == -EINVAL);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/conf.d/bad.conf:3: hwm", tmpdir);
    CHECKF(!strncmp(err, prefix, strlen(prefix)) && strstr(err, "unknown key"),
           "want %s, got %s", prefix, err);
    /* a missing include is an error with the including line */
    p = write_file("main.conf", "workers = 2;\n@include \"conf.d/nope.conf\"\n");
    CHECK(cfg_load(p, &c, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "main.conf:2:"), "%s", err);
    cfg_free(&c);
}

/* libconfig 1.5 exit()s on a directory it was told to @include (flex's
 * "input in flex scanner failed") and blocks on a FIFO: cfg_load refuses
 * them first, and only them (fuzz_config found it; the inputs are in
 * tests/fuzz/regress/config/).  Without the check this program exits 2. */
TEST(include_of_a_non_file_is_refused)
{
    char sub[128], fifo[128];
    snprintf(sub, sizeof sub, "%s/conf.d", tmpdir);
    mkdir(sub, 0755);
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    CHECK(mkfifo(fifo, 0600) == 0 || errno == EEXIST);
    REQUIRE(write_file("conf.d/dir.conf", "workers = 3;\n\n  @include \"conf.d\"\n"));
    static const struct { const char *text, *want; } bad[] = {
        { "workers = 2;\n@include \".\"\n", "main.conf:2: @include \".\": not a regular file" },
        { "@include \"\"\n", "main.conf:1: @include \"\": not a regular file" },
        { "\t @include\t\"conf.d\"\n", "main.conf:1: @include \"conf.d\"" },
        { "@include \"fifo\"\n", "main.conf:1: @include \"fifo\": not a regular file" },
        { "@include \"c\\onf.d\"\n", "@include \"conf.d\"" },   /* \o is o */
        { "@include \"conf.d/dir.conf\"\n", "conf.d/dir.conf:3: @include \"conf.d\"" },
    };
    struct cfg c = { 0 };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = write_file("main.conf", bad[i].text);
        REQUIRE(p);
        err[0] = '\0';
        int rc = cfg_load(p, &c, err, sizeof err);
        CHECKF(rc == -EINVAL && strstr(err, bad[i].want) && !strncmp(err, tmpdir, strlen(tmpdir)),
               "case %zu: rc=%d, want ...%s, got %s", i, rc, bad[i].want, err);
    }
    /* not includes for libconfig, so not refused: in comments, in a string,
     * not at the start of a line */
    const char *p = write_file("main.conf", "/* x\n@include \".\" */ # @include \".\"\n"
                               "// @include \".\"\nmodel = \"a\n@include \\\".\";\n"
                               "workers = 4; /* */\n");
    REQUIRE(p);
    int rc = cfg_load(p, &c, err, sizeof err);
    CHECKF(rc == 0 && c.workers == 4, "rc=%d %s", rc, err);
    cfg_free(&c);
}

/* Errors are one line even when the value they quote is not. */
TEST(errors_are_one_line)
{
    const char *p = write_file("nl.conf", "streams = ( { name = \"a\"; type = \"alsa\";\n"
                               "  device = \"hw:0\"; rate = 8000; format = \"S16\n_LE\\r\"; } );\n");
    REQUIRE(p);
    struct cfg c = { 0 };
    char err[512] = "";
    CHECK(cfg_load(p, &c, err, sizeof err) == -EINVAL);
    CHECKF(strstr(err, "nl.conf:2: streams[0].format: unknown value") && !strchr(err, '\n')
           && !strchr(err, '\r'), "%s", err);
}

/* The committed example is what the key table generates, and it parses to
 * exactly the defaults. */
TEST(example_file)
{
    char *want = NULL;
    size_t wl = 0;
    FILE *m = open_memstream(&want, &wl);
    cfg_write_example(m);
    fclose(m);
    char *have = slurp("config/trident.conf");
    CHECKF(have != NULL, "config/trident.conf not readable from %s", getcwd((char[256]){ 0 }, 256));
    if (have && strcmp(have, want)) {
        size_t i = 0;
        while (have[i] && have[i] == want[i])
            i++;
        CHECKF(0, "config/trident.conf differs from cfg_write_example() at byte %zu: run "
                  "`make conf`", i);
    }
    free(have);
    /* parse the generated text */
    const char *p = write_file("example.conf", want);
    free(want);
    REQUIRE(p);
    struct cfg c = { 0 }, d;
    char err[512] = "";
    int rc = cfg_load(p, &c, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    REQUIRE(rc == 0);
    REQUIRE(cfg_defaults(&d) == 0);
    CHECK(!strcmp(c.model, d.model));
    CHECK(c.workers == d.workers && c.hwm == d.hwm && c.to_stdout == d.to_stdout);
    CHECK(c.stats_interval == d.stats_interval);
    REQUIRE(c.n_endpoints == d.n_endpoints);
    for (unsigned i = 0; i < c.n_endpoints; i++)
        CHECK(!strcmp(c.endpoints[i], d.endpoints[i]));
    CHECK(c.n_streams == 0);
    cfg_free(&c);
    cfg_free(&d);
}

/* --help lists every key, and trident.conf(5) documents every key --help lists. */
TEST(docs_cover_every_key)
{
    char *help = NULL;
    size_t hl = 0;
    FILE *m = open_memstream(&help, &hl);
    cfg_print_help(m);
    fclose(m);
    const char *must[] = { "model", "workers", "publish.endpoints", "publish.hwm",
                           "publish.stdout", "publish.stats_interval", "streams[].name",
                           "streams[].type", "streams[].rt_priority", "streams[].channel_names" };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECKF(strstr(help, must[i]), "--help lacks %s", must[i]);

    char *man = slurp("packaging/trident.conf.5");
    CHECKF(man != NULL, "packaging/trident.conf.5 not readable");
    unsigned n = 0;
    for (char *line = help; man && line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        /* key lines: two spaces, then the key, then " (" */
        if (line[0] != ' ' || line[1] != ' ' || line[2] == ' ')
            continue;
        char key[64];
        if (sscanf(line + 2, "%63[^ (]", key) != 1)
            continue;
        const char *leafk = strrchr(key, '.');
        leafk = leafk ? leafk + 1 : key;
        /* the man page writes each key as a bold tag line: .B name */
        char tag[80];
        snprintf(tag, sizeof tag, "\n.B %s\n", leafk);
        CHECKF(strstr(man, tag), "trident.conf(5) lacks \"%s\" (as .B %s)", key, leafk);
        n++;
    }
    CHECKF(!man || n >= 20, "only %u keys in --help", n);
    free(man);
    free(help);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/trident-cfg-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(defaults);
    RUN(valid_file);
    RUN(command_line_overrides);
    RUN(errors_name_file_line_key);
    RUN(missing_file);
    RUN(include_is_relative_to_the_config);
    RUN(include_of_a_non_file_is_refused);
    RUN(errors_are_one_line);
    RUN(example_file);
    RUN(docs_cover_every_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_END();
}
