/* Weft's network-namespace sockets for ambient mode: TCP sockets made inside an enrolled pod's
 * network namespace (setns on the calling thread, socket, setns back), so that the node proxy
 * listens and connects *in* the pod while the process itself stays in the node's namespace.
 * N-API: netnsListen, netnsSocket, netnsAddresses; they join originalDst (original_dst.c) and
 * releaseUnusedPages (pages.c) in the weft_capture addon's exports, this file holding the addon's entry point (binding.gyp). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns */
#endif
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* The addon's one entry point is at the end of this file; original_dst.c and pages.c register
 * their parts. */
napi_value weft_original_dst_register(napi_env env, napi_value exports);
napi_value weft_pages_register(napi_env env, napi_value exports);

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), "WEFT_INTERNAL", "N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static const char *errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOSYS: return "ENOSYS";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    default: return "EIO";
  }
}

/* Throws Error { code: "E...", errno } whose message names the step, the namespace and, for the
 * privilege errors, the capability that is missing. */
static napi_value throw_errno(napi_env env, int err, const char *what, const char *ns_path) {
  char message[1024];
  const char *hint = "";
  if (err == EPERM) {
    hint = " (entering a network namespace needs CAP_SYS_ADMIN and marking sockets with SO_MARK "
           "needs CAP_NET_ADMIN: run the node proxy as root or grant it both capabilities)";
  } else if (err == EACCES) {
    hint = " (reading another process's /proc/<pid>/ns/net needs the same user or CAP_SYS_PTRACE)";
  }
  snprintf(message, sizeof message, "%s in network namespace %s: %s%s", what, ns_path, strerror(err), hint);
  const char *name = errno_name(err);
  napi_value code, msg, error;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
      napi_create_error(env, code, msg, &error) != napi_ok) {
    napi_throw_error(env, name, message);
    return NULL;
  }
  napi_value errnoValue;
  if (napi_create_int32(env, err, &errnoValue) == napi_ok) napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

/* Reads `value` as a non-empty string into buf; false (with a TypeError thrown) when it is not one. */
static int get_string(napi_env env, napi_value value, char *buf, size_t size, const char *usage) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, buf, size, &len) != napi_ok || len == 0 || len >= size - 1) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return 0;
  }
  return 1;
}

#ifdef __linux__
/* An fd of the calling thread's own network namespace, opened on first use and kept: every
 * socket made in a pod returns here, and opening /proc/self/task/<tid>/ns/net cost about as much
 * as the two setns calls together. One per thread (setns acts on the calling thread only). */
static __thread int own_netns = -1;

/* Moves the calling thread into the network namespace at path. On success *orig holds the fd of
 * the thread's previous namespace, to be given to leave_netns; on failure the thread has not
 * moved, *what names the failed step and the errno is returned. */
static int enter_netns(const char *path, int *orig, const char **what) {
  if (own_netns < 0) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
    own_netns = open(self, O_RDONLY | O_CLOEXEC);
    if (own_netns < 0) {
      *what = "open(/proc/self/task/<tid>/ns/net)";
      return errno;
    }
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *what = "open";
    return errno;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    *what = err == EINVAL ? "setns (is it a network namespace?)" : "setns";
    return err;
  }
  close(target);
  *orig = own_netns;
  return 0;
}

/* Returns the thread to its namespace (the fd stays open for the next time). Failing here would
 * leave Node's main thread, and every socket it makes from then on, inside a pod: there is no
 * safe way to continue. */
static void leave_netns(int orig) {
  if (setns(orig, CLONE_NEWNET) != 0) {
    char message[256];
    snprintf(message, sizeof message, "cannot return to the node's network namespace after entering a pod's: %s", strerror(errno));
    napi_fatal_error("weft netns", NAPI_AUTO_LENGTH, message, NAPI_AUTO_LENGTH);
  }
}

/* A non-blocking, close-on-exec TCP socket of `family` with SO_MARK `mark` (0: none), made in
 * the current namespace. Returns the fd, or -1 with *what set and errno kept. */
static int marked_socket(int family, uint32_t mark, const char **what) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *what = "socket";
    return -1;
  }
  if (mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    *what = "setsockopt(SO_MARK)";
    return -1;
  }
  return fd;
}
#endif

/* netnsListen(nsPath, host, port, mark): a TCP socket made in the namespace at nsPath, with
 * SO_REUSEADDR (and SO_MARK when mark != 0), bound to host:port but not listening yet; Node's
 * server.listen({ fd }) takes it from there. host is an IPv4 or IPv6 literal. */
static napi_value netns_listen(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "netnsListen(nsPath: string, host: string, port: number, mark: number)";
  char ns_path[512], host[64];
  uint32_t port = 0, mark = 0;
  if (argc < 4) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return NULL;
  }
  if (!get_string(env, argv[0], ns_path, sizeof ns_path, usage) || !get_string(env, argv[1], host, sizeof host, usage)) return NULL;
  if (napi_get_value_uint32(env, argv[2], &port) != napi_ok || port > 65535 ||
      napi_get_value_uint32(env, argv[3], &mark) != napi_ok) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return NULL;
  }
#ifdef __linux__
  struct sockaddr_storage addr;
  socklen_t addr_len;
  memset(&addr, 0, sizeof addr);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    addr_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    addr_len = sizeof *v6;
  } else {
    napi_throw_type_error(env, "WEFT_USAGE", "netnsListen: host must be an IPv4 or IPv6 address literal");
    return NULL;
  }

  int orig = -1;
  const char *what = "";
  int err = enter_netns(ns_path, &orig, &what);
  if (err != 0) return throw_errno(env, err, what, ns_path);
  int fd = marked_socket(addr.ss_family, mark, &what);
  if (fd >= 0) {
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) what = "setsockopt(SO_REUSEADDR)";
    else if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) what = "bind";
    else what = NULL;
    if (what != NULL) {
      err = errno;
      close(fd);
      fd = -1;
      errno = err;
    }
  }
  err = errno;
  leave_netns(orig);
  if (fd < 0) {
    char step[128];
    snprintf(step, sizeof step, "%s %s:%u", what, host, port);
    return throw_errno(env, err, step, ns_path);
  }
  napi_value out;
  CHECK(env, napi_create_int32(env, fd, &out));
  return out;
#else
  return throw_errno(env, ENOSYS, "netnsListen (network namespaces exist on Linux only)", ns_path);
#endif
}

/* netnsSocket(nsPath, family, mark): an unconnected non-blocking TCP socket (family 4 or 6)
 * made in the namespace at nsPath, with SO_MARK when mark != 0. */
static napi_value netns_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "netnsSocket(nsPath: string, family: 4 | 6, mark: number)";
  char ns_path[512];
  uint32_t family = 0, mark = 0;
  if (argc < 3) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return NULL;
  }
  if (!get_string(env, argv[0], ns_path, sizeof ns_path, usage)) return NULL;
  if (napi_get_value_uint32(env, argv[1], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_uint32(env, argv[2], &mark) != napi_ok) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return NULL;
  }
#ifdef __linux__
  int orig = -1;
  const char *what = "";
  int err = enter_netns(ns_path, &orig, &what);
  if (err != 0) return throw_errno(env, err, what, ns_path);
  int fd = marked_socket(family == 4 ? AF_INET : AF_INET6, mark, &what);
  err = errno;
  leave_netns(orig);
  if (fd < 0) return throw_errno(env, err, what, ns_path);
  napi_value out;
  CHECK(env, napi_create_int32(env, fd, &out));
  return out;
#else
  return throw_errno(env, ENOSYS, "netnsSocket (network namespaces exist on Linux only)", ns_path);
#endif
}

#ifdef __linux__
#define MAX_ADDRESSES 256
struct address {
  char interface[IF_NAMESIZE];
  char text[INET6_ADDRSTRLEN];
  int family;
};
#endif

/* netnsAddresses(nsPath): [{ interface, address, family }] of every IPv4/IPv6 address on a
 * non-loopback interface in the namespace (getifaddrs there: its netlink socket is the
 * namespace's). */
static napi_value netns_addresses(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "netnsAddresses(nsPath: string)";
  char ns_path[512];
  if (argc < 1) {
    napi_throw_type_error(env, "WEFT_USAGE", usage);
    return NULL;
  }
  if (!get_string(env, argv[0], ns_path, sizeof ns_path, usage)) return NULL;
#ifdef __linux__
  struct address *found = calloc(MAX_ADDRESSES, sizeof *found);
  if (!found) return throw_errno(env, ENOMEM, "netnsAddresses", ns_path);
  size_t count = 0;
  int orig = -1;
  const char *what = "";
  int err = enter_netns(ns_path, &orig, &what);
  if (err != 0) {
    free(found);
    return throw_errno(env, err, what, ns_path);
  }
  struct ifaddrs *list = NULL;
  if (getifaddrs(&list) != 0) {
    err = errno;
    what = "getifaddrs";
  } else {
    for (struct ifaddrs *a = list; a != NULL && count < MAX_ADDRESSES; a = a->ifa_next) {
      if (a->ifa_addr == NULL || (a->ifa_flags & IFF_LOOPBACK)) continue;
      int fam = a->ifa_addr->sa_family;
      const void *bits = fam == AF_INET ? (const void *)&((struct sockaddr_in *)a->ifa_addr)->sin_addr
                       : fam == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr : NULL;
      if (bits == NULL || !inet_ntop(fam, bits, found[count].text, sizeof found[count].text)) continue;
      snprintf(found[count].interface, sizeof found[count].interface, "%s", a->ifa_name);
      found[count].family = fam == AF_INET ? 4 : 6;
      count++;
    }
    freeifaddrs(list);
  }
  leave_netns(orig);
  if (err != 0) {
    free(found);
    return throw_errno(env, err, what, ns_path);
  }
  napi_value out;
  if (napi_create_array_with_length(env, count, &out) != napi_ok) {
    free(found);
    napi_throw_error(env, "WEFT_INTERNAL", "N-API call failed: napi_create_array_with_length");
    return NULL;
  }
  for (size_t i = 0; i < count; i++) {
    napi_value item, iface, address, fam;
    if (napi_create_object(env, &item) != napi_ok ||
        napi_create_string_utf8(env, found[i].interface, NAPI_AUTO_LENGTH, &iface) != napi_ok ||
        napi_create_string_utf8(env, found[i].text, NAPI_AUTO_LENGTH, &address) != napi_ok ||
        napi_create_int32(env, found[i].family, &fam) != napi_ok ||
        napi_set_named_property(env, item, "interface", iface) != napi_ok ||
        napi_set_named_property(env, item, "address", address) != napi_ok ||
        napi_set_named_property(env, item, "family", fam) != napi_ok ||
        napi_set_element(env, out, (uint32_t)i, item) != napi_ok) {
      free(found);
      napi_throw_error(env, "WEFT_INTERNAL", "N-API call failed while building netnsAddresses' result");
      return NULL;
    }
  }
  free(found);
  return out;
#else
  return throw_errno(env, ENOSYS, "netnsAddresses (network namespaces exist on Linux only)", ns_path);
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  if (weft_original_dst_register(env, exports) == NULL || weft_pages_register(env, exports) == NULL) return NULL;
  const struct { const char *name; napi_callback cb; } fns[] = {
    {"netnsListen", netns_listen},
    {"netnsSocket", netns_socket},
    {"netnsAddresses", netns_addresses},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    CHECK(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn));
    CHECK(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
