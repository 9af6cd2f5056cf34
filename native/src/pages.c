/* The node executable's start-up pages. A Node.js process touches much of the node binary while
 * it starts (V8's start-up snapshot, the code cache of the built-in modules it loads, start-up
 * code) and never again, yet those pages stay mapped in its page tables, and so in its RSS, for
 * as long as it runs: ~20 MiB of a Weft proxy's. releaseExecutablePages() drops them with
 * madvise(MADV_DONTNEED) on the executable's read-only private mappings. They stay in the page
 * cache, shared with every other process running the same binary; a page the process uses again
 * is mapped back on its next access (a minor fault, or a read of the binary if the kernel has
 * since reclaimed it).
 *
 * Safe because such a mapping's contents are the file's: MADV_DONTNEED on a private file
 * mapping discards the process's private copies, so a mapping holding any (relocated RELRO data:
 * "Anonymous" above 0 in smaps) is left alone, and a read-only one cannot gain copies. The
 * running executable cannot be written in place (ETXTBSY); replaced by rename, its old inode lives
 * on while mapped. N-API: releaseExecutablePages() -> { mappings, residentBytes }. */
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

static napi_value fail(napi_env env, int err, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "releaseExecutablePages: %s: %s", what, strerror(err));
  napi_throw_error(env, "WEFT_INTERNAL", message);
  return NULL;
}

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

static napi_value release_executable_pages(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __linux__
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) return fail(env, errno, "readlink(/proc/self/exe)");
  exe[n] = '\0';

  FILE *smaps = fopen("/proc/self/smaps", "r");
  if (!smaps) return fail(env, errno, "open /proc/self/smaps");
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
  if (read_error) return fail(env, read_error, "read /proc/self/smaps");

  double resident = 0;
  uint32_t released = 0;
  for (size_t i = 0; i < count; i++) {
    if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) != 0) {
      return fail(env, errno, "madvise(MADV_DONTNEED) on the executable's mapping");
    }
    resident += (double)ranges[i].resident_kib * 1024;
    released++;
  }
  napi_value out, mappings, bytes;
  if (napi_create_object(env, &out) != napi_ok || napi_create_uint32(env, released, &mappings) != napi_ok ||
      napi_create_double(env, resident, &bytes) != napi_ok || napi_set_named_property(env, out, "mappings", mappings) != napi_ok ||
      napi_set_named_property(env, out, "residentBytes", bytes) != napi_ok) {
    napi_throw_error(env, "WEFT_INTERNAL", "N-API call failed while building releaseExecutablePages' result");
    return NULL;
  }
  return out;
#else
  return fail(env, ENOSYS, "start-up pages are released on Linux only");
#endif
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
