// The fixture's CUDA backend header: its include of core/ passes.
#pragma once

#include "core/tensor.h"
