// A bare quoted name found through the cuda/ include root (cuda/cuda_backend.h of this fixture):
// the CPU backend may not include the CUDA one.
#include "cuda_backend.h"
