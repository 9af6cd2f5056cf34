/* The pages a long-running Node.js process has stopped using. A process touches much of the node
 * binary while it starts and warms up (V8's start-up snapshot, the code cache of the built-in
 * modules it loads, start-up code, the optimizing compiler) and little of it afterwards, and the
 * same of the shared libraries it loaded (libstdc++'s locale and exception tables, libm), yet
 * every page it has touched stays mapped in its page tables, and so in its RSS, for as long as it
 * runs: ~40 MiB of a Weft proxy's 70. releaseUnusedPages() drops them with
 * madvise(MADV_DONTNEED) on the read-only private mappings of the executable and of every shared
 * object (`*.so`, `*.so.N`, `*.node`). They stay in the page cache, shared with every other
 * process mapping the same files; a page the process uses again is mapped back on its next access
 * (a minor fault, or a read of the file if the kernel has reclaimed it meanwhile). Released now
 * and then (core/binary-pages.ts), the process keeps mapped what it has used since.
 *
 * Safe because such a mapping's contents are the file's: MADV_DONTNEED on a private file
 * mapping discards the process's private copies, so a mapping holding any (relocated RELRO data,
 * a debugger's or uprobe's breakpoint: "Anonymous" above 0 in smaps) is left alone, and a
 * read-only one cannot gain copies. What is left, clean pages of a file, the kernel itself
 * unmaps whenever it reclaims memory; releasing them does nothing it does not already do.
 *
 * Then, with glibc, malloc_trim(0): the free memory of every malloc arena, whole pages of it, goes
 * back to the kernel. OpenSSL's and nghttp2's buffers come and go with connections, and glibc
 * otherwise returns only what is free at the top of the main heap.
 * N-API: releaseUnusedPages() -> Promise<{ mappings, residentBytes, heapTrimmed }>. */
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

#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

#define MAX_RANGES 256

#ifdef __linux__
struct range {
  unsigned long start, end;
  unsigned long resident_kib;
};

/* One mapping of /proc/self/smaps while its fields are read. */
struct mapping {
  struct range r;
  int candidate; /* the executable's or a shared object's, read-only, private */
  long anonymous_kib; /* -1 until its "Anonymous:" line */
};

/* A shared object's path: "libc.so.6", "ld-linux-x86-64.so.2", "libfoo.so", an addon's "x.node". */
static int is_shared_object(const char *path) {
  const char *base = strrchr(path, '/');
  if (!base) return 0;
  base++;
  size_t n = strlen(base);
  if (n > 5 && strcmp(base + n - 5, ".node") == 0) return 1;
  for (const char *so = strstr(base, ".so"); so; so = strstr(so + 1, ".so")) {
    if (so[3] == '\0' || so[3] == '.') return 1;
  }
  return 0;
}

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
  int heap_trimmed; /* malloc_trim gave memory back */
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
      const char *path = line + path_at;
      m.candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && (strcmp(path, exe) == 0 || is_shared_object(path));
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
      job->step = "madvise(MADV_DONTNEED) on a mapping of the executable or a library";
      return;
    }
    job->resident_bytes += (double)ranges[i].resident_kib * 1024;
    job->mappings++;
  }
#ifdef __GLIBC__
  job->heap_trimmed = malloc_trim(0);
#endif
#else
  job->err = ENOSYS;
  job->step = "unused pages are released on Linux only";
#endif
}

static void execute(napi_env env, void *data) {
  (void)env;
  release((struct job *)data);
}

static void complete(napi_env env, napi_status status, void *data) {
  struct job *job = data;
  napi_value out = NULL, mappings, bytes, trimmed;
  if (status == napi_ok && job->err == 0) {
    if (napi_create_object(env, &out) != napi_ok || napi_create_uint32(env, job->mappings, &mappings) != napi_ok ||
        napi_create_double(env, job->resident_bytes, &bytes) != napi_ok ||
        napi_get_boolean(env, job->heap_trimmed != 0, &trimmed) != napi_ok ||
        napi_set_named_property(env, out, "mappings", mappings) != napi_ok ||
        napi_set_named_property(env, out, "residentBytes", bytes) != napi_ok ||
        napi_set_named_property(env, out, "heapTrimmed", trimmed) != napi_ok) {
      out = NULL;
    }
  }
  if (out) {
    napi_resolve_deferred(env, job->deferred, out);
  } else {
    char text[256];
    if (job->err) snprintf(text, sizeof text, "releaseUnusedPages: %s: %s", job->step, strerror(job->err));
    else snprintf(text, sizeof text, "releaseUnusedPages: N-API call failed while building its result");
    napi_value message, error;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

/* releaseUnusedPages() -> Promise<{ mappings, residentBytes, heapTrimmed }>: how many mappings
 * it released, what was resident of them, and whether malloc_trim gave memory back. */
static napi_value release_unused_pages(napi_env env, napi_callback_info info) {
  (void)info;
  struct job *job = calloc(1, sizeof *job);
  napi_value promise, name;
  if (!job) {
    napi_throw_error(env, "WEFT_INTERNAL", "releaseUnusedPages: out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "weft:releaseUnusedPages", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job);
    napi_throw_error(env, "WEFT_INTERNAL", "releaseUnusedPages: N-API call failed while queueing the release");
    return NULL;
  }
  return promise;
}

/* Adds releaseUnusedPages to the addon's exports; called by the addon's entry point (netns.c). */
napi_value weft_pages_register(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "releaseUnusedPages", NAPI_AUTO_LENGTH, release_unused_pages, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "releaseUnusedPages", fn) != napi_ok) {
    napi_throw_error(env, "WEFT_INTERNAL", "N-API call failed while registering releaseUnusedPages");
    return NULL;
  }
  return exports;
}
