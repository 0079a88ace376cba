"""How the world reaches the service: the staff API, the public booking endpoint, the customer's page behind
a signed link, and the no-show sweeper."""
