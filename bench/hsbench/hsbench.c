// hsbench: Hyperscan alone on a file held in memory, the peer figure that
// `sluice scan --count` is compared with (issue #9).
//
//   hsbench [-t THREADS] [-r REPEATS] [-i] [-b BLOCK] -f LITERALS [-f LITERALS]... FILE
//
// The file is read once into anonymous memory (not timed). For each pattern
// file (one literal per line, parsed like `sluice scan -f`: the `\n` and a
// `\r` before it are not part of the literal, empty lines are skipped) the
// literals are compiled with hs_compile_lit_multi in block mode, without
// HS_FLAG_SINGLEMATCH (every occurrence, overlapping ones too), with
// HS_FLAG_CASELESS under -i (ASCII only, like sluice's -i). Exact duplicates
// (after folding, for -i) are compiled once, as sluice's ScanTable does, so a
// match is counted once. Then THREADS threads, each with its own scratch, scan
// contiguous slices of the buffer; a slice is scanned up to (longest literal -
// 1) bytes past its end and a match is counted by the slice its start offset
// falls in (start = end - the literal's length), so every match is counted
// exactly once, the way sluice counts matches across chunk boundaries.
//
// One line per pattern file on stdout, `key=value` fields separated by
// spaces (see print_result); errors on stderr, exit status 2. Timing is the
// wall time from starting the threads to joining the last (scratch regions
// are allocated before); GB/s = file bytes / seconds.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hs/hs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// hs_scan takes an unsigned int length: a slice is scanned in blocks of at
// most this many bytes (plus the overlap), with the same start-offset rule.
// -b changes it, so that tests reach the rule with small files.
static size_t block_bytes = (size_t)1 << 30;
#define MAX_SETS 64
#define MAX_REPEATS 100
#define MAX_THREADS 1024

static void die(const char *what, const char *detail) {
    fprintf(stderr, "hsbench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// The whole file at `path`, in memory the process owns (read(), so the
// bytes are copied out of the page cache before any timing starts).
static unsigned char *read_file(const char *path, size_t *size_out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) die(path, strerror(errno));
    size_t size = (size_t)st.st_size;
    unsigned char *data = malloc(size ? size : 1);
    if (!data) die(path, "out of memory");
    size_t done = 0;
    while (done < size) {
        size_t want = size - done < ((size_t)1 << 30) ? size - done : ((size_t)1 << 30);
        ssize_t n = read(fd, data + done, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die(path, strerror(errno));
        if (n == 0) die(path, "the file shrank while it was read");
        done += (size_t)n;
    }
    close(fd);
    *size_out = size;
    return data;
}

static unsigned char fold(unsigned char b) { return (unsigned char)((unsigned)(b - 'A') < 26u ? b | 0x20 : b); }

struct literal {
    const unsigned char *bytes;
    size_t length;
    unsigned id;  // line number among the non-empty lines: sluice's pattern number
};

static int fold_compare;

// Orders literals by their (folded, under -i) bytes, then by id, so the
// first of a run of equal literals is the one sluice keeps.
static int compare_literals(const void *pa, const void *pb) {
    const struct literal *a = pa, *b = pb;
    size_t n = a->length < b->length ? a->length : b->length;
    for (size_t k = 0; k < n; ++k) {
        unsigned char x = a->bytes[k], y = b->bytes[k];
        if (fold_compare) {
            x = fold(x);
            y = fold(y);
        }
        if (x != y) return x < y ? -1 : 1;
    }
    if (a->length != b->length) return a->length < b->length ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int same_literal(const struct literal *a, const struct literal *b) {
    if (a->length != b->length) return 0;
    for (size_t k = 0; k < a->length; ++k) {
        unsigned char x = a->bytes[k], y = b->bytes[k];
        if (fold_compare) {
            x = fold(x);
            y = fold(y);
        }
        if (x != y) return 0;
    }
    return 1;
}

// A compiled pattern file.
struct pattern_set {
    const char *path;
    unsigned char *text;  // the file's bytes; literals point into it
    unsigned count;       // literals (non-empty lines)
    unsigned distinct;    // compiled after removing duplicates
    size_t max_length;
    unsigned *lengths;    // by id
    hs_database_t *database;
    double compile_seconds;
};

static void load_set(struct pattern_set *set, const char *path, int caseless) {
    size_t size;
    set->path = path;
    set->text = read_file(path, &size);
    struct literal *lits = NULL;
    size_t count = 0, capacity = 0;
    size_t line = 0;
    for (size_t k = 0; k <= size; ++k) {
        if (k < size && set->text[k] != '\n') continue;
        size_t end = k;
        if (end > line && set->text[end - 1] == '\r') --end;
        if (end > line) {
            if (count == capacity) {
                capacity = capacity ? 2 * capacity : 1024;
                lits = realloc(lits, capacity * sizeof *lits);
                if (!lits) die(path, "out of memory");
            }
            if (count >= 0xFFFFFFFFu) die(path, "too many literals");
            lits[count] = (struct literal){set->text + line, end - line, (unsigned)count};
            ++count;
        }
        line = k + 1;
    }
    if (count == 0) die(path, "no literals (every line is empty)");
    set->count = (unsigned)count;
    set->lengths = malloc(count * sizeof *set->lengths);
    if (!set->lengths) die(path, "out of memory");
    set->max_length = 0;
    for (size_t k = 0; k < count; ++k) {
        if (lits[k].length > 0xFFFFFFFFu) die(path, "a literal is longer than 4 GiB");
        set->lengths[k] = (unsigned)lits[k].length;
        if (lits[k].length > set->max_length) set->max_length = lits[k].length;
    }

    struct literal *ordered = malloc(count * sizeof *ordered);
    if (!ordered) die(path, "out of memory");
    memcpy(ordered, lits, count * sizeof *lits);
    fold_compare = caseless;
    qsort(lits, count, sizeof *lits, compare_literals);
    const char **expressions = malloc(count * sizeof *expressions);
    unsigned *flags = malloc(count * sizeof *flags);
    unsigned *ids = malloc(count * sizeof *ids);
    size_t *lens = malloc(count * sizeof *lens);
    if (!expressions || !flags || !ids || !lens) die(path, "out of memory");
    // Keep the first of each run of equal literals, then compile them in
    // pattern-number order, the order sluice hands them to Hyperscan.
    unsigned char *keep = calloc(count, 1);
    if (!keep) die(path, "out of memory");
    for (size_t k = 0; k < count; ++k) {
        if (k == 0 || !same_literal(&lits[k - 1], &lits[k])) keep[lits[k].id] = 1;
    }
    unsigned distinct = 0;
    for (size_t id = 0; id < count; ++id) {
        if (!keep[id]) continue;
        expressions[distinct] = (const char *)ordered[id].bytes;
        flags[distinct] = caseless ? HS_FLAG_CASELESS : 0;
        ids[distinct] = (unsigned)id;
        lens[distinct] = ordered[id].length;
        ++distinct;
    }
    free(keep);
    set->distinct = distinct;

    hs_compile_error_t *error = NULL;
    double start = now_seconds();
    hs_error_t rc = hs_compile_lit_multi(expressions, flags, ids, lens, distinct, HS_MODE_BLOCK, NULL, &set->database, &error);
    set->compile_seconds = now_seconds() - start;
    if (rc != HS_SUCCESS) {
        char detail[512];
        snprintf(detail, sizeof detail, "hs_compile_lit_multi of %u literals failed (%d): %s (expression %d)", distinct, rc,
                 error && error->message ? error->message : "no message", error ? error->expression : -1);
        die(path, detail);
    }
    free(expressions);
    free(flags);
    free(ids);
    free(lens);
    free(lits);
    free(ordered);
}

// One thread's share of one scan.
struct job {
    const struct pattern_set *set;
    const unsigned char *data;
    size_t size;
    size_t begin, end;  // the slice: matches starting in [begin, end) are this thread's
    hs_scratch_t *scratch;
    unsigned long long matches;
    double seconds;
    hs_error_t error;
};

struct block_context {
    const unsigned *lengths;
    unsigned long long limit;  // matches starting at or past this block offset belong to the next block
    unsigned long long matches;
};

static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags, void *context) {
    (void)from;
    (void)flags;
    struct block_context *c = context;
    if (to - c->lengths[id] < c->limit) ++c->matches;
    return 0;
}

static void *scan_slice(void *argument) {
    struct job *job = argument;
    double start = now_seconds();
    job->matches = 0;
    job->error = HS_SUCCESS;
    for (size_t b = job->begin; b < job->end; b += block_bytes) {
        size_t block_end = job->end - b < block_bytes ? job->end : b + block_bytes;
        // Bytes up to (longest literal - 1) past the block end finish the
        // matches that start inside it; no match starting later is counted.
        size_t reach = block_end + job->set->max_length - 1;
        if (reach > job->size) reach = job->size;
        struct block_context c = {job->set->lengths, block_end - b, 0};
        hs_error_t rc = hs_scan(job->set->database, (const char *)job->data + b, (unsigned)(reach - b), 0, job->scratch,
                                on_match, &c);
        if (rc != HS_SUCCESS) {
            job->error = rc;
            break;
        }
        job->matches += c.matches;
    }
    job->seconds = now_seconds() - start;
    return NULL;
}

static int compare_doubles(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static void usage(void) {
    fprintf(stderr,
            "usage: hsbench [-t THREADS] [-r REPEATS] [-i] [-b BLOCK] -f LITERALS [-f LITERALS]... FILE\n"
            "  Hyperscan (literal mode, every match) over FILE held in memory; one result line per -f.\n"
            "  -b: bytes per hs_scan call within a thread's slice (default 1 GiB; smaller for tests)\n");
    exit(2);
}

static long parse_number(const char *text, long low, long high, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < low || v > high) die(what, "out of range or not a number");
    return v;
}

int main(int argc, char **argv) {
    int threads = 1, repeats = 3, caseless = 0, sets = 0;
    const char *set_paths[MAX_SETS];
    int opt;
    while ((opt = getopt(argc, argv, "t:r:ib:f:h")) != -1) {
        switch (opt) {
        case 't': threads = (int)parse_number(optarg, 1, MAX_THREADS, "-t"); break;
        case 'r': repeats = (int)parse_number(optarg, 1, MAX_REPEATS, "-r"); break;
        case 'i': caseless = 1; break;
        case 'b': block_bytes = (size_t)parse_number(optarg, 1, 1L << 30, "-b"); break;
        case 'f':
            if (sets == MAX_SETS) die("-f", "too many pattern files");
            set_paths[sets++] = optarg;
            break;
        default: usage();
        }
    }
    if (optind != argc - 1 || sets == 0) usage();
    if (hs_valid_platform() != HS_SUCCESS) die("hs_valid_platform", "this CPU lacks what Hyperscan needs (SSSE3)");
    const char *path = argv[optind];
    size_t size;
    double load_start = now_seconds();
    const unsigned char *data = read_file(path, &size);
    double load_seconds = now_seconds() - load_start;

    for (int s = 0; s < sets; ++s) {
        struct pattern_set set;
        load_set(&set, set_paths[s], caseless);
        struct job jobs[MAX_THREADS];
        pthread_t ids[MAX_THREADS];
        hs_scratch_t *first = NULL;
        if (hs_alloc_scratch(set.database, &first) != HS_SUCCESS) die("hs_alloc_scratch", set.path);
        for (int t = 0; t < threads; ++t) {
            jobs[t] = (struct job){.set = &set, .data = data, .size = size};
            jobs[t].begin = (size_t)((unsigned __int128)size * (unsigned)t / (unsigned)threads);
            jobs[t].end = (size_t)((unsigned __int128)size * (unsigned)(t + 1) / (unsigned)threads);
            if (t == 0) {
                jobs[t].scratch = first;
            } else if (hs_clone_scratch(first, &jobs[t].scratch) != HS_SUCCESS) {
                die("hs_clone_scratch", set.path);
            }
        }
        double seconds[MAX_REPEATS];
        unsigned long long matches = 0;
        double best = 0, slowest = 0, fastest = 0;
        for (int r = 0; r < repeats; ++r) {
            double start = now_seconds();
            for (int t = 0; t < threads; ++t) {
                int rc = pthread_create(&ids[t], NULL, scan_slice, &jobs[t]);
                if (rc != 0) die("pthread_create", strerror(rc));
            }
            for (int t = 0; t < threads; ++t) pthread_join(ids[t], NULL);
            seconds[r] = now_seconds() - start;
            unsigned long long total = 0;
            double lo = jobs[0].seconds, hi = jobs[0].seconds;
            for (int t = 0; t < threads; ++t) {
                if (jobs[t].error != HS_SUCCESS) {
                    char detail[64];
                    snprintf(detail, sizeof detail, "error %d", jobs[t].error);
                    die("hs_scan failed", detail);
                }
                total += jobs[t].matches;
                if (jobs[t].seconds < lo) lo = jobs[t].seconds;
                if (jobs[t].seconds > hi) hi = jobs[t].seconds;
            }
            if (r > 0 && total != matches) die("the match count changed between repeats", set.path);
            matches = total;
            // The slowest and fastest thread of the best run show how even the slices were.
            if (r == 0 || seconds[r] < best) {
                best = seconds[r];
                fastest = lo;
                slowest = hi;
            }
        }
        qsort(seconds, (size_t)repeats, sizeof seconds[0], compare_doubles);
        double median = seconds[repeats / 2];
        // hs_version() is "5.4.0 2021-01-26": no spaces in a field.
        char version[64];
        snprintf(version, sizeof version, "%s", hs_version());
        for (char *c = version; *c; ++c) {
            if (*c == ' ') *c = '_';
        }
        // One line; the fields are what scripts/gpu-scanbench.sh reads.
        printf("hsbench set=%s literals=%u distinct=%u caseless=%d threads=%d bytes=%zu repeats=%d "
               "compile_s=%.3f load_s=%.3f best_s=%.4f median_s=%.4f gbps=%.3f median_gbps=%.3f "
               "thread_s_min=%.4f thread_s_max=%.4f matches=%llu hyperscan=%s\n",
               set.path, set.count, set.distinct, caseless, threads, size, repeats, set.compile_seconds, load_seconds, best,
               median, best > 0 ? (double)size / best / 1e9 : 0.0, median > 0 ? (double)size / median / 1e9 : 0.0, fastest,
               slowest, matches, version);
        fflush(stdout);
        for (int t = 0; t < threads; ++t) hs_free_scratch(jobs[t].scratch);
        hs_free_database(set.database);
        free(set.lengths);
        free(set.text);
    }
    return 0;
}
