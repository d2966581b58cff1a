// fr_display: reference M5Stack (Basic/Gray/Fire) program for frMhs's serial display, protocol
// version 1 of docs/display-protocol.md. Not built with the agents: open it in the Arduino IDE
// with the "M5Stack" library installed, board "M5Stack-Core-ESP32".
#include <M5Stack.h>

static const unsigned long BAUD = 115200;
static const unsigned long SILENCE_MS = 6000;  // 3 missed heartbeats: "no home server"
static const size_t LINE_MAX = 512;            // protocol bound, newline included

struct State {
  String home;
  bool brokerUp;
  int online, total;
  String cmd, text;
};

static State st;
static char line[LINE_MAX];
static size_t len;
static bool skipping;                          // inside an over-long line
static unsigned long lastHeard;
static bool heard, showingSilence;
static bool haveFrame;
static unsigned long lastEnd;

static void resetState() {
  st.home = "";
  st.brokerUp = false;
  st.online = st.total = 0;
  st.cmd = "";
  st.text = "";
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Undoes the protocol's escapes; the font has ASCII only, so other bytes become '?' (one per
// UTF-8 character: continuation bytes are skipped).
static String unescape(const char *v) {
  String s;
  for (const char *p = v; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '\\' && p[1]) {
      char e = *++p;
      if (e == 'n') s += '\n';
      else if (e == 'r') s += ' ';
      else if (e == 't') s += ' ';
      else if (e == '\\') s += '\\';
      else if (e == 'x' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) { p += 2; s += '?'; }
      else s += '?';
    } else if (c >= 0x80) {
      if ((c & 0xc0) != 0x80) s += '?';
    } else {
      s += (char)c;
    }
  }
  return s;
}

static void draw() {
  M5.Lcd.fillScreen(BLACK);
  M5.Lcd.setTextSize(2);
  M5.Lcd.setTextColor(WHITE, BLACK);
  M5.Lcd.setCursor(4, 4);
  M5.Lcd.print(st.home.length() ? st.home : String("fr"));
  M5.Lcd.setCursor(4, 28);
  M5.Lcd.setTextColor(st.brokerUp ? GREEN : RED, BLACK);
  M5.Lcd.print(st.brokerUp ? "broker: up" : "broker: DOWN");
  M5.Lcd.setCursor(4, 52);
  M5.Lcd.setTextColor(st.online == st.total ? GREEN : YELLOW, BLACK);
  M5.Lcd.printf("controllers: %d/%d", st.online, st.total);
  M5.Lcd.setTextColor(CYAN, BLACK);
  M5.Lcd.setCursor(4, 76);
  M5.Lcd.print(st.cmd.length() ? st.cmd : String("-"));
  M5.Lcd.drawFastHLine(0, 100, 320, DARKGREY);
  M5.Lcd.setTextColor(WHITE, BLACK);
  M5.Lcd.setCursor(0, 108);
  M5.Lcd.print(st.text);                       // wraps at the screen's edge, '\n' breaks
  showingSilence = false;
}

static void drawSilence() {
  M5.Lcd.fillRect(0, 216, 320, 24, RED);
  M5.Lcd.setTextColor(WHITE, RED);
  M5.Lcd.setCursor(4, 220);
  M5.Lcd.print("no home server");
  showingSilence = true;
}

static void requestSync() {
  Serial.print("FR1 sync\n");
}

static void onLine(char *l) {
  if (strncmp(l, "FR1 ", 4) != 0) return;      // not ours
  char *key = l + 4;
  char *eq = strchr(key, '=');
  if (!eq) return;
  *eq = '\0';
  const char *val = eq + 1;
  if (!strcmp(key, "hello")) {
    if (atoi(val) != 1) return;                // a newer protocol: keep what we show
    resetState();
    haveFrame = false;                         // a full frame restarts the numbering check
  } else if (!strcmp(key, "home")) st.home = unescape(val);
  else if (!strcmp(key, "broker")) st.brokerUp = !strcmp(val, "up");
  else if (!strcmp(key, "online")) st.online = atoi(val);
  else if (!strcmp(key, "total")) st.total = atoi(val);
  else if (!strcmp(key, "cmd")) st.cmd = unescape(val);
  else if (!strcmp(key, "text")) st.text = unescape(val);
  else if (!strcmp(key, "end")) {
    unsigned long n = strtoul(val, NULL, 10);
    if (haveFrame && n != lastEnd + 1) requestSync();   // bytes were lost on the line
    haveFrame = true;
    lastEnd = n;
    draw();
  }
  // "server", "ping" and unknown keys: nothing to do beyond lastHeard.
}

void setup() {
  M5.begin();
  Serial.begin(BAUD);
  resetState();
  draw();
  drawSilence();
  requestSync();                               // the frame sent on open was lost while we booted
}

void loop() {
  M5.update();
  if (M5.BtnA.wasPressed()) requestSync();
  while (Serial.available() > 0) {
    char c = (char)Serial.read();
    if (c == '\n') {
      if (!skipping) {
        if (len && line[len - 1] == '\r') len--;
        line[len] = '\0';
        lastHeard = millis();
        heard = true;
        onLine(line);
      }
      len = 0;
      skipping = false;
    } else if (!skipping) {
      if (len + 1 >= LINE_MAX) skipping = true;  // longer than the protocol allows: drop it
      else line[len++] = c;
    }
  }
  bool silent = !heard || millis() - lastHeard > SILENCE_MS;
  if (silent && !showingSilence) drawSilence();
  else if (!silent && showingSilence) draw();
}
