#include <cstdio>

int main() {
  std::puts("autonomoe: skeleton");
  return 0;
}
