-- AOU source tables, portable copy for the demo and the tests: this text runs unchanged on
-- SQLite and PostgreSQL (production is SQL Server: ../mssql/schema.sql). Idempotent.
-- healthpro: the HealthPro participant export, one row per participant per load (a participant
--   loaded twice keeps both rows; vw_reporting_base keeps the latest). Column names are the
--   export's headers. HealthPro writes 1900-01-01 for "no date".
-- redcap: the site's REDCap recruitment project, one row per record; pmi_id is typed in by
--   staff, so it may carry spaces or lower case: pmi_key, computed and indexed, is the PMI ID
--   to join on (trimmed, upper-cased: SQL Server compares case-insensitively, SQLite and
--   PostgreSQL do not, and the views must give the same rows everywhere).
-- etl_row_id / etl_loaded_at belong to the data mart's loader, not to the exports; the loader
--   supplies etl_row_id (PostgreSQL would not number an INTEGER PRIMARY KEY by itself).
-- Dates are DATE: PostgreSQL stores dates, SQLite stores the ISO text 'yyyy-mm-dd' (DATE has
--   NUMERIC affinity, which keeps such text as text), so CAST(d AS VARCHAR(10)) gives
--   'yyyy-mm-dd' on both (PostgreSQL with its default DateStyle, ISO).
CREATE TABLE IF NOT EXISTS healthpro (
    etl_row_id                                            INTEGER NOT NULL PRIMARY KEY,
    "PMI ID"                                              VARCHAR(20) NOT NULL,
    "Biobank ID"                                          VARCHAR(20),
    "Last Name"                                           VARCHAR(100),
    "First Name"                                          VARCHAR(100),
    "Date of Birth"                                       DATE,
    "Language"                                            VARCHAR(40),
    "Participant Status"                                  VARCHAR(60),
    "General Consent Status"                              SMALLINT,
    "General Consent Date"                                DATE,
    "EHR Consent Status"                                  SMALLINT,
    "EHR Consent Date"                                    DATE,
    "gROR Consent Status"                                 SMALLINT,
    "gROR Consent Date"                                   DATE,
    "Withdrawal Status"                                   SMALLINT,
    "Withdrawal Date"                                     DATE,
    "Street Address"                                      VARCHAR(200),
    "City"                                                VARCHAR(100),
    "State"                                               VARCHAR(20),
    "ZIP"                                                 VARCHAR(10),
    "Email"                                               VARCHAR(254),
    "Phone"                                               VARCHAR(40),
    "Sex"                                                 VARCHAR(40),
    "Gender Identity"                                     VARCHAR(100),
    "Race/Ethnicity"                                      VARCHAR(100),
    "Paired Site"                                         VARCHAR(100),
    "Paired Organization"                                 VARCHAR(100),
    "Basics PPI Survey Completion Date"                   DATE,
    "Health PPI Survey Completion Date"                   DATE,
    "Lifestyle PPI Survey Completion Date"                DATE,
    "Hist PPI Survey Completion Date"                     DATE,
    "Access PPI Survey Completion Date"                   DATE,
    "Family PPI Survey Completion Date"                   DATE,
    "Personal Medical History PPI Survey Completion Date" DATE,
    "COPE May PPI Survey Completion Date"                 DATE,
    "COPE June PPI Survey Completion Date"                DATE,
    "COPE July PPI Survey Completion Date"                DATE,
    "Physical Measurements Completion Date"               DATE,
    "Samples for DNA Received"                            SMALLINT,
    "8 mL SST Collection Date"                            DATE,
    "8 mL PST Collection Date"                            DATE,
    "4 mL Na-Hep Collection Date"                         DATE,
    "4 mL EDTA Collection Date"                           DATE,
    "1st 10 mL EDTA Collection Date"                      DATE,
    "2nd 10 mL EDTA Collection Date"                      DATE,
    "Saliva Collection Date"                              DATE,
    "Urine 10 mL Collection Date"                         DATE,
    "2 mL EDTA Collection Date"                           DATE,
    "Cell-Free DNA Collection Date"                       DATE,
    "Paxgene RNA Collection Date"                         DATE,
    "Urine 90 mL Collection Date"                         DATE,
    "DV Enrollment"                                       SMALLINT,
    etl_loaded_at                                         TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_healthpro_pmi_id ON healthpro ("PMI ID", etl_loaded_at, etl_row_id);
CREATE INDEX IF NOT EXISTS ix_healthpro_loaded_at ON healthpro (etl_loaded_at);
CREATE TABLE IF NOT EXISTS redcap (
    record_id                                             INTEGER NOT NULL PRIMARY KEY,
    pmi_id                                                VARCHAR(20),
    org                                                   VARCHAR(60),
    aou_enroller                                          VARCHAR(20),
    spec_provider                                         VARCHAR(200),
    other_details                                         VARCHAR(500),
    tech_asst                                             SMALLINT,
    learn_aou                                             VARCHAR(200),
    tech_asst_other                                       VARCHAR(500),
    clinical_outreach_name                                VARCHAR(200),
    pmi_key                                               VARCHAR(20) GENERATED ALWAYS AS (CAST(UPPER(TRIM(pmi_id)) AS VARCHAR(20))) STORED,
    etl_loaded_at                                         TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_redcap_pmi_key ON redcap (pmi_key, record_id);
