// moe/ including model/ (the cycle that issue 13 removed): refused; a system header and a lower
// layer (params/) pass.
#pragma once

#include <vector>

#include "params/params.h"
#include "model/transformer.h"
