/* The reference sketch as the Arduino builder compiles it: the .ino as C++ (its functions are
 * defined before use, so the builder's generated prototypes are not needed). */
#include "fr_display.ino"
