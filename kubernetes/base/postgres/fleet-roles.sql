-- One service's database role and schema, idempotently (safe to run again and again).
--
-- Run it connected to the fleet database, once per service, as a superuser or as a role with
-- CREATEROLE that owns the database (a managed server's admin, such as Azure's flexible server,
-- is no superuser), with psql variables:
--
--   psql "postgres://postgres:...@host:5432/fleet" -v ON_ERROR_STOP=1 \
--        -v role=book_svc -v schema=book -v password=book_svc -f scripts/sql/fleet-roles.sql
--
-- The database itself is created beforehand (CREATE DATABASE cannot run in a script that is
-- connected to it); scripts/lib/postgres.sh `create_fleet_database` does both, and so can a
-- Kubernetes init script that loops over the services.
--
-- Result: role :role can log in with :password, owns schema :schema (and so everything it
-- creates there), has :schema as its search_path in this database, and can use nothing else:
-- PUBLIC keeps no rights on the database or on schema public, and no role is granted anything
-- on another role's schema, so a SELECT on a foreign schema fails with
-- "permission denied for schema ...".

\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- The role: created once, its password and attributes (re)set on every run.
SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
ALTER ROLE :"role" WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'password';
-- Only a superuser may name SUPERUSER, REPLICATION or BYPASSRLS in ALTER ROLE, even to turn them
-- off; a role made by anyone else never has them, which the check below holds to.
SELECT format('ALTER ROLE %I WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS', :'role')
WHERE (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
\gexec
SELECT format('DO $$BEGIN RAISE EXCEPTION %L; END$$',
              format('role %s is a superuser, or may replicate or bypass row security: '
                     'run this script as a superuser to take that away', :'role'))
FROM pg_roles
WHERE rolname = :'role' AND (rolsuper OR rolreplication OR rolbypassrls)
\gexec
-- Making a schema for a role, or giving it one, takes membership of that role, which a
-- superuser has implicitly and a CREATEROLE admin only once granted.
SELECT format('GRANT %I TO %I', :'role', current_user)
WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
\gexec

-- The database: nobody but the roles granted below may connect, create schemas or temp tables.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database())
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role')
\gexec

-- The schema, owned by the role (ownership repaired if someone else created it).
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"role";
ALTER SCHEMA :"schema" OWNER TO :"role";
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;

-- Schema public is nobody's playground.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- Unqualified names (and sqlx's _sqlx_migrations table) land in the service's own schema.
SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = %I', :'role', current_database(),
              :'schema')
\gexec
