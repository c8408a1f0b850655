// The simulator's <cub/device/device_radix_sort.cuh> (see am_sim/radix_sort.h).
#pragma once
#include "am_sim/radix_sort.h"
