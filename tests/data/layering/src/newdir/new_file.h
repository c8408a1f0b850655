// A directory that LAYERS does not place: refused until it is given a layer.
#pragma once
