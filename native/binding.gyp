# Build recipe for Weft's one native addon: getsockopt(SO_ORIGINAL_DST) for captured sockets,
# and sockets made inside pods' network namespaces for ambient mode (src/netns.c).
# Built by the root package's `install` script (`npm ci` runs it); see README "Pod networking".
{
  "targets": [
    {
      "target_name": "weft_capture",
      "sources": ["src/original_dst.c", "src/netns.c"],
      # One addon, two sources, one entry point (in netns.c, which calls original_dst.c's part).
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
