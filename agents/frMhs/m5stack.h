/* m5stack: the status display on a serial port (an M5Stack, or anything that speaks the line
 * protocol of docs/display-protocol.md). Opened with libserialport, non-blocking, its fd in the
 * loop; output goes through a bounded buffer (a device that stops reading loses frames, then gets
 * a full-state frame once it drains). Unplugged = closed, reopened every second; each state
 * change is logged once. */
#ifndef MHS_M5STACK_H
#define MHS_M5STACK_H

#include <stddef.h>

#include "display.h"

struct loop;
struct m5stack;

#define M5STACK_LINE_MAX 512      /* bytes of one protocol line, newline included */
#define M5STACK_HEARTBEAT_MS 2000

/* The device on port (copied) at baud, opened at the first m5stack_show (so its first frame
 * holds a real state). Never fails because the device is missing: it keeps retrying. NULL only
 * without memory. Owned by the caller: m5stack_free. */
struct m5stack *m5stack_new(struct loop *loop, const char *port, int baud);
/* Sends "FR1 bye=stopped" to an open device (waiting half a second at most for it to leave),
 * then closes the port. */
void m5stack_free(struct m5stack *m);
/* Sends what changed since the last frame (everything after a (re)open or a sync request) as
 * one frame. v is copied. */
void m5stack_show(struct m5stack *m, const struct display_view *v);

/* Protocol encoding: "FR1 <key>=<escaped value>\n" into out (cap >= M5STACK_LINE_MAX); a value
 * that would make the line longer than M5STACK_LINE_MAX is cut at a character boundary. Returns
 * the line's length. */
size_t m5stack_line(char *out, size_t cap, const char *key, const char *value);

#endif
