"""`python -m connectors.google_people.simulator --port 8420 ...`"""

from connectors.google_people.simulator import main

main()
