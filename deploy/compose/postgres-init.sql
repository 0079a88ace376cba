-- docker-compose's PostgreSQL, on its first start (an empty data volume): one role and one database per
-- service, each role owning its database and nothing else. A service never reads another's database.
-- Development passwords: the workstation's compose only (the Kubernetes overlays take them from Secrets).
-- tests/deploy/test_compose.py checks that every installed service has its database here.
CREATE ROLE customer_profile LOGIN PASSWORD 'customer_profile-dev';
CREATE DATABASE customer_profile OWNER customer_profile;
CREATE ROLE workorder LOGIN PASSWORD 'workorder-dev';
CREATE DATABASE workorder OWNER workorder;
CREATE ROLE notification LOGIN PASSWORD 'notification-dev';
CREATE DATABASE notification OWNER notification;
CREATE ROLE reminder LOGIN PASSWORD 'reminder-dev';
CREATE DATABASE reminder OWNER reminder;
CREATE ROLE analytics LOGIN PASSWORD 'analytics-dev';
CREATE DATABASE analytics OWNER analytics;
