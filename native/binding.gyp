# Build recipe for Weft's one native addon: getsockopt(SO_ORIGINAL_DST) for captured sockets.
# Built by the root package's `install` script (`npm ci` runs it); see README "Pod networking".
{
  "targets": [
    {
      "target_name": "weft_capture",
      "sources": ["src/original_dst.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
