-- One service's database role and schema, idempotently (safe to run again and again).
--
-- Run it connected, as a superuser (or a role with CREATEROLE that owns the database), to the
-- fleet database, once per service, with psql variables:
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
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';

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
