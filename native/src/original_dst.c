/* Weft's native capture helper: the original destination of a socket that iptables REDIRECTed
 * to the proxy (getsockopt SO_ORIGINAL_DST for IPv4, IP6T_SO_ORIGINAL_DST for IPv6), exposed
 * to Node.js through N-API as originalDst(fd) -> { address, port, family } | undefined. */
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <string.h>
#include <stdio.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h: kernel ABI constants,
 * defined here so that the build needs no kernel headers. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#endif

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), "WEFT_INTERNAL", "N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_value code, msg, error;
  const char *name = err == EBADF ? "EBADF" : err == ENOTSOCK ? "ENOTSOCK" : err == ENOPROTOOPT ? "ENOPROTOOPT"
                   : err == EPERM ? "EPERM" : err == EINVAL ? "EINVAL" : err == ENOSYS ? "ENOSYS" : "EIO";
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

#ifdef __linux__
static napi_value make_result(napi_env env, const char *address, unsigned port, int family) {
  napi_value out, a, p, f;
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &a));
  CHECK(env, napi_create_uint32(env, port, &p));
  CHECK(env, napi_create_int32(env, family, &f));
  CHECK(env, napi_set_named_property(env, out, "address", a));
  CHECK(env, napi_set_named_property(env, out, "port", p));
  CHECK(env, napi_set_named_property(env, out, "family", f));
  return out;
}

static int is_v4_mapped(const struct sockaddr_in6 *s) {
  return IN6_IS_ADDR_V4MAPPED(&s->sin6_addr);
}
#endif

/* originalDst(fd: number): { address, port, family: 4 | 6 } | undefined.
 * undefined: the kernel has no NAT record for the connection (ENOENT: it was not redirected). */
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "WEFT_USAGE", "originalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
#ifdef __linux__
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return throw_errno(env, errno, "getsockname");

  /* An IPv4 connection on a dual-stack IPv6 socket is tracked by IPv4 conntrack. */
  int v4 = local.ss_family == AF_INET ||
           (local.ss_family == AF_INET6 && is_v4_mapped((const struct sockaddr_in6 *)&local));
  if (v4) {
    struct sockaddr_in dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) != 0) {
      napi_value undef;
      if (errno == ENOENT && napi_get_undefined(env, &undef) == napi_ok) return undef;
      return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    }
    char text[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text)) return throw_errno(env, errno, "inet_ntop");
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }
  if (local.ss_family == AF_INET6) {
    struct sockaddr_in6 dst;
    socklen_t dlen = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) != 0) {
      napi_value undef;
      if (errno == ENOENT && napi_get_undefined(env, &undef) == napi_ok) return undef;
      return throw_errno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
    }
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text)) return throw_errno(env, errno, "inet_ntop");
    return make_result(env, text, ntohs(dst.sin6_port), 6);
  }
  return throw_errno(env, EINVAL, "originalDst: not a TCP/IP socket");
#else
  return throw_errno(env, ENOSYS, "originalDst: SO_ORIGINAL_DST exists on Linux only");
#endif
}

/* Adds originalDst to the addon's exports; called by the addon's one entry point (netns.c). */
napi_value weft_original_dst_register(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(env, napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "originalDst", fn));
  return exports;
}
