// The downstream program compiled as C++11 (find_package path).
#include "main.c"
