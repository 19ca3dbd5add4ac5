// sensorlink bridge: an Arduino that reads thermocouple amplifiers and speaks the sensorlink
// ASCII line protocol (driver "ascii-bridge", see docs/hardware.md):
//
//   $<id>,<value>[,<unit>]*HH\r\n        a reading, e.g. $t1,23.5,C*1C
//   $<id>,MAX31855,<8 hex digits>*HH\r\n the raw 32-bit word of a MAX31855
//   $<id>,MAX6675,<4 hex digits>*HH\r\n  the raw 16-bit word of a MAX6675
//
// HH is the XOR of every character between '$' and '*', as two hex digits (NMEA style).
// Raw words are sent as read so that sensorlink decodes temperatures and fault bits itself and
// a fault is never shown as a temperature. No libraries needed: the chips are read by
// bit-banging SPI (both are read-only, mode 0, MSB first, at most 4-5 MHz).
//
// Wiring (Arduino Uno, 5 V; the breakout boards carry their own regulators):
//   MAX31855 / MAX6675 SO  (DO)  -> pin 12     shared by both chips
//   MAX31855 / MAX6675 SCK (CLK) -> pin 13     shared by both chips
//   MAX31855 CS                  -> pin 10
//   MAX6675  CS                  -> pin 9
//   an NTC or any analog sensor  -> A0         sent as a plain reading "a0" (raw 0-1023)

const uint8_t PIN_SO = 12;
const uint8_t PIN_SCK = 13;
const uint8_t PIN_CS_31855 = 10;
const uint8_t PIN_CS_6675 = 9;
const unsigned long PERIOD_MS = 250;  // the MAX6675 needs >= 220 ms between conversions

uint32_t readBits(uint8_t cs, uint8_t bits) {
  uint32_t value = 0;
  digitalWrite(cs, LOW);
  delayMicroseconds(1);
  for (uint8_t i = 0; i < bits; i++) {
    digitalWrite(PIN_SCK, HIGH);
    delayMicroseconds(1);
    value = (value << 1) | (digitalRead(PIN_SO) ? 1 : 0);
    digitalWrite(PIN_SCK, LOW);
    delayMicroseconds(1);
  }
  digitalWrite(cs, HIGH);
  return value;
}

// Sends "$" + body + "*HH\r\n".
void sendLine(const char *body) {
  uint8_t sum = 0;
  for (const char *p = body; *p; p++) sum ^= (uint8_t)*p;
  char tail[6];
  snprintf(tail, sizeof(tail), "*%02X\r\n", sum);
  Serial.write('$');
  Serial.print(body);
  Serial.print(tail);
}

void setup() {
  pinMode(PIN_SO, INPUT);
  pinMode(PIN_SCK, OUTPUT);
  pinMode(PIN_CS_31855, OUTPUT);
  pinMode(PIN_CS_6675, OUTPUT);
  digitalWrite(PIN_SCK, LOW);
  digitalWrite(PIN_CS_31855, HIGH);
  digitalWrite(PIN_CS_6675, HIGH);
  Serial.begin(115200);
  // Anything not starting with '$' is skipped by sensorlink: a banner is fine.
  Serial.println(F("# sensorlink bridge v1"));
}

void loop() {
  static unsigned long last = 0;
  if (millis() - last < PERIOD_MS) return;
  last = millis();

  char body[40];
  uint32_t w31855 = readBits(PIN_CS_31855, 32);
  snprintf(body, sizeof(body), "tc1,MAX31855,%08lX", (unsigned long)w31855);
  sendLine(body);

  uint16_t w6675 = (uint16_t)readBits(PIN_CS_6675, 16);
  snprintf(body, sizeof(body), "tc2,MAX6675,%04X", w6675);
  sendLine(body);

  // A plain reading: value and unit as text (AVR printf has no %f, so format by hand).
  int raw = analogRead(A0);
  snprintf(body, sizeof(body), "a0,%d,count", raw);
  sendLine(body);
}
