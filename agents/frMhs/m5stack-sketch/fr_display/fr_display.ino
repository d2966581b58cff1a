// fr_display: reference M5Stack (Basic/Gray/Fire) program for frMhs's serial display, protocol
// version 1 of docs/display-protocol.md. Not built with the agents: open this folder in the
// Arduino IDE with the "M5Stack" library installed, board "M5Stack-Core-ESP32".
// The protocol itself (lines, escapes, frames, heartbeat silence) is fr_proto.c, plain C that
// the host tests compile and feed with what frMhs really sends; this file draws and moves bytes
// (the host tests also build it, against a stand-in for M5Stack.h that draws into text).
#include <M5Stack.h>

#include "fr_proto.h"

static const unsigned long BAUD = 115200;

static struct fr_proto proto;
static bool showingSilence;
static char ascii[FR_PROTO_LINE_MAX];         // a field as the ASCII font can draw it

// The legacy M5Stack font has ASCII only: other characters are drawn as '?'. For Japanese, use
// M5Unified/M5GFX with M5.Lcd.setFont(&fonts::efontJA_16) and print the fields as they are
// (UTF-8); see docs/display-protocol.md.
static void printField(const char *s, const char *ifEmpty) {
  fr_proto_ascii(ascii, sizeof ascii, s[0] ? s : ifEmpty);
  M5.Lcd.print(ascii);
}

static void drawBanner(const char *what) {
  M5.Lcd.fillRect(0, 216, 320, 24, RED);
  M5.Lcd.setTextColor(WHITE, RED);
  M5.Lcd.setCursor(4, 220);
  M5.Lcd.print(what);
}

static void draw() {
  const struct fr_proto_state *st = &proto.shown;
  M5.Lcd.fillScreen(BLACK);
  M5.Lcd.setTextSize(2);
  M5.Lcd.setTextColor(WHITE, BLACK);
  M5.Lcd.setCursor(4, 4);
  printField(st->home, "fr");
  M5.Lcd.setCursor(4, 28);
  M5.Lcd.setTextColor(st->broker_up ? GREEN : RED, BLACK);
  M5.Lcd.print(st->broker_up ? "broker: up" : "broker: DOWN");
  M5.Lcd.setCursor(4, 52);
  M5.Lcd.setTextColor(st->online == st->total ? GREEN : YELLOW, BLACK);
  M5.Lcd.printf("controllers: %ld/%ld", st->online, st->total);
  M5.Lcd.setTextColor(CYAN, BLACK);
  M5.Lcd.setCursor(4, 76);
  printField(st->cmd, "-");
  M5.Lcd.drawFastHLine(0, 100, 320, DARKGREY);
  M5.Lcd.setTextColor(WHITE, BLACK);
  M5.Lcd.setCursor(0, 108);
  printField(st->text, "");                   // wraps at the screen's edge, '\n' breaks
  showingSilence = false;
  if (st->stopped)                             // frMhs said bye: no need to wait for silence
    drawBanner("frMhs stopped");
}

static void drawSilence() {
  drawBanner("no home server");
  showingSilence = true;
}

void setup() {
  M5.begin();
  Serial.begin(BAUD);
  fr_proto_init(&proto);
  draw();
  drawSilence();
  Serial.print(FR_PROTO_SYNC);                 // the frame sent on open was lost while we booted
}

void loop() {
  char in[128];
  size_t n = 0;
  M5.update();
  if (M5.BtnA.wasPressed())
    Serial.print(FR_PROTO_SYNC);
  while (n < sizeof in && Serial.available() > 0)
    in[n++] = (char)Serial.read();
  unsigned todo = fr_proto_feed(&proto, in, n, millis());
  if (todo & FR_PROTO_SEND_SYNC)               // a frame number was skipped: lines were lost
    Serial.print(FR_PROTO_SYNC);
  if (todo & FR_PROTO_DRAW)
    draw();
  bool silent = fr_proto_silent(&proto, millis()) && !proto.shown.stopped;
  if (silent && !showingSilence)
    drawSilence();
  else if (!silent && showingSilence)
    draw();
}
