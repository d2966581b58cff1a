/* M5Stack.h stand-in for the host tests: just the part of the legacy M5Stack library (and of
 * the Arduino core under it) that fr_display.ino uses, with the same signatures, so the sketch
 * compiles unchanged on the host. The "display" is a grid of text cells (the built-in font at
 * text size n is 6n x 8n pixels on the 320 x 240 panel) that m5host.h reads back as text;
 * Serial is two byte queues the test fills and drains; millis() is the test's clock. */
#ifndef FR_M5HOST_M5STACK_H
#define FR_M5HOST_M5STACK_H

#include <stddef.h>
#include <stdint.h>

#define BLACK 0x0000
#define DARKGREY 0x7BEF
#define RED 0xF800
#define GREEN 0x07E0
#define CYAN 0x07FF
#define YELLOW 0xFFE0
#define WHITE 0xFFFF

uint32_t millis(void);   /* unsigned long on the ESP32 core: 32 bits there too */

class HardwareSerial {
public:
	void begin(unsigned long baud);
	int available(void);
	int read(void);
	size_t print(const char *s);
};
extern HardwareSerial Serial;

class M5Display {
public:
	void fillScreen(uint32_t color);
	void fillRect(int32_t x, int32_t y, int32_t w, int32_t h, uint32_t color);
	void drawFastHLine(int32_t x, int32_t y, int32_t w, uint32_t color);
	void setCursor(int16_t x, int16_t y);
	void setTextSize(uint8_t size);
	void setTextColor(uint16_t fg, uint16_t bg);
	size_t print(const char *s);
	size_t printf(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
};

class Button {
public:
	uint8_t wasPressed(void);
};

class M5Stack {
public:
	void begin(bool LCDEnable = true, bool SDEnable = true, bool SerialEnable = true,
		   bool I2CEnable = false);
	void update(void);
	M5Display Lcd;
	Button BtnA, BtnB, BtnC;
};
extern M5Stack M5;

#endif
