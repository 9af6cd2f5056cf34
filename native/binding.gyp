# Build recipe for Weft's one native addon: getsockopt(SO_ORIGINAL_DST) for captured sockets,
# sockets made inside pods' network namespaces for ambient mode (src/netns.c), and the release of
# the pages a long-running process no longer uses (src/pages.c).
# Built by the root package's `install` script (`npm ci` runs it); see README "Pod networking".
{
  "targets": [
    {
      "target_name": "weft_capture",
      "sources": ["src/original_dst.c", "src/netns.c", "src/pages.c"],
      # One addon, three sources, one entry point (in netns.c, which calls the others' parts).
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
