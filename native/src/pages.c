/* The node executable's pages. A Node.js process touches much of the node binary while it starts
 * and warms up (V8's start-up snapshot, the code cache of the built-in modules it loads, start-up
 * code, the optimizing compiler) and little of it afterwards, yet every page it has touched stays
 * mapped in its page tables, and so in its RSS, for as long as it runs: ~40 MiB of a Weft proxy's
 * 70. releaseExecutablePages() drops them with madvise(MADV_DONTNEED) on the executable's
 * read-only private mappings. They stay in the page cache, shared with every other process of
 * the same binary; a page the process uses again is mapped back on its next access (a minor
 * fault, or a read of the binary if the kernel has reclaimed it meanwhile). Released now and
 * then (core/binary-pages.ts), the process keeps mapped what it has used since.
 *
 * Safe because such a mapping's contents are the file's: MADV_DONTNEED on a private file
 * mapping discards the process's private copies, so a mapping holding any (relocated RELRO data,
 * a debugger's or uprobe's breakpoint: "Anonymous" above 0 in smaps) is left alone, and a
 * read-only one cannot gain copies. The running executable cannot be written in place (ETXTBSY);
 * replaced by rename, its old inode lives on while mapped.
 * N-API: releaseExecutablePages() -> Promise<{ mappings, residentBytes }>. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline */
#endif
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

#define MAX_RANGES 64

#ifdef __linux__
struct range {
  unsigned long start, end;
  unsigned long resident_kib;
};

/* One mapping of /proc/self/smaps while its fields are read. */
struct mapping {
  struct range r;
  int candidate; /* the executable's, read-only, private */
  long anonymous_kib; /* -1 until its "Anonymous:" line */
};

static void keep_if_clean(const struct mapping *m, struct range *ranges, size_t *count) {
  if (m->candidate && m->anonymous_kib == 0 && *count < MAX_RANGES) ranges[(*count)++] = m->r;
}
#endif

/* One release, run on a libuv pool thread so that reading smaps (a walk of every page table,
 * ~2 ms for a proxy) never holds up the event loop. No N-API calls until complete(). */
struct job {
  napi_async_work work;
  napi_deferred deferred;
  int err;          /* errno of the step that failed, or 0 */
  const char *step; /* the step that failed */
  uint32_t mappings;
  double resident_bytes;
};

static void release(struct job *job) {
#ifdef __linux__
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) {
    job->err = errno;
    job->step = "readlink(/proc/self/exe)";
    return;
  }
  exe[n] = '\0';

  FILE *smaps = fopen("/proc/self/smaps", "r");
  if (!smaps) {
    job->err = errno;
    job->step = "open /proc/self/smaps";
    return;
  }
  struct range ranges[MAX_RANGES];
  size_t count = 0;
  struct mapping m = {{0, 0, 0}, 0, -1};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, smaps)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    unsigned long start, end, offset, inode;
    char perms[5];
    int path_at = -1;
    /* A mapping's header: "start-end perms offset dev inode [path]"; field lines ("Rss:  12 kB")
     * never parse as that. */
    if (sscanf(line, "%lx-%lx %4s %lx %*s %lu %n", &start, &end, perms, &offset, &inode, &path_at) == 5 && path_at > 0) {
      keep_if_clean(&m, ranges, &count);
      m.r.start = start;
      m.r.end = end;
      m.r.resident_kib = 0;
      m.anonymous_kib = -1;
      m.candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && strcmp(line + path_at, exe) == 0;
      continue;
    }
    long kib;
    if (sscanf(line, "Anonymous: %ld kB", &kib) == 1) m.anonymous_kib = kib;
    else if (sscanf(line, "Rss: %ld kB", &kib) == 1) m.r.resident_kib = (unsigned long)kib;
  }
  int read_error = ferror(smaps) ? errno : 0;
  keep_if_clean(&m, ranges, &count);
  free(line);
  fclose(smaps);
  if (read_error) {
    job->err = read_error;
    job->step = "read /proc/self/smaps";
    return;
  }
  for (size_t i = 0; i < count; i++) {
    if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) != 0) {
      job->err = errno;
      job->step = "madvise(MADV_DONTNEED) on the executable's mapping";
      return;
    }
    job->resident_bytes += (double)ranges[i].resident_kib * 1024;
    job->mappings++;
  }
#else
  job->err = ENOSYS;
  job->step = "the node executable's pages are released on Linux only";
#endif
}

static void execute(napi_env env, void *data) {
  (void)env;
  release((struct job *)data);
}

static void complete(napi_env env, napi_status status, void *data) {
  struct job *job = data;
  napi_value out = NULL, mappings, bytes;
  if (status == napi_ok && job->err == 0) {
    if (napi_create_object(env, &out) != napi_ok || napi_create_uint32(env, job->mappings, &mappings) != napi_ok ||
        napi_create_double(env, job->resident_bytes, &bytes) != napi_ok ||
        napi_set_named_property(env, out, "mappings", mappings) != napi_ok ||
        napi_set_named_property(env, out, "residentBytes", bytes) != napi_ok) {
      out = NULL;
    }
  }
  if (out) {
    napi_resolve_deferred(env, job->deferred, out);
  } else {
    char text[256];
    if (job->err) snprintf(text, sizeof text, "releaseExecutablePages: %s: %s", job->step, strerror(job->err));
    else snprintf(text, sizeof text, "releaseExecutablePages: N-API call failed while building its result");
    napi_value message, error;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

/* releaseExecutablePages() -> Promise<{ mappings, residentBytes }>: what was resident of the
 * mappings it released. */
static napi_value release_executable_pages(napi_env env, napi_callback_info info) {
  (void)info;
  struct job *job = calloc(1, sizeof *job);
  napi_value promise, name;
  if (!job) {
    napi_throw_error(env, "WEFT_INTERNAL", "releaseExecutablePages: out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "weft:releaseExecutablePages", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job);
    napi_throw_error(env, "WEFT_INTERNAL", "releaseExecutablePages: N-API call failed while queueing the release");
    return NULL;
  }
  return promise;
}

/* Adds releaseExecutablePages to the addon's exports; called by the addon's entry point (netns.c). */
napi_value weft_pages_register(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "releaseExecutablePages", NAPI_AUTO_LENGTH, release_executable_pages, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "releaseExecutablePages", fn) != napi_ok) {
    napi_throw_error(env, "WEFT_INTERNAL", "N-API call failed while registering releaseExecutablePages");
    return NULL;
  }
  return exports;
}
