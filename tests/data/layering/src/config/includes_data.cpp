// config/ and data/ are independent layers (the same line of LAYERS): refused.
#include "data/loader.h"
