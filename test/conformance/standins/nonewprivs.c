/*
 * Stand-in for the nonewprivs image critest pulls: installed setuid root, it prints the
 * effective uid it runs with, "Effective uid: 0" unless no_new_privs kept it from rising.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("Effective uid: %d\n", (int)geteuid());
  return 0;
}
