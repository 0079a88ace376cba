import sys

from bench.profile import main

sys.exit(main(sys.argv[1:]))
