-- AOU source tables in dm_aou (SQL Server). Idempotent: each object is created only if missing.
-- healthpro: the HealthPro participant export, one row per participant per load (a participant
--   loaded twice keeps both rows; vw_reporting_base keeps the latest). Column names are the
--   export's headers. Dates are date; HealthPro writes 1900-01-01 for "no date".
-- redcap: the site's REDCap recruitment project, one row per record; pmi_id is typed in by
--   staff, so it may carry spaces or lower case: pmi_key, computed and indexed, is the PMI ID
--   to join on (trimmed, upper-cased: SQL Server compares case-insensitively, SQLite and
--   PostgreSQL do not, and the views must give the same rows everywhere).
-- etl_row_id / etl_loaded_at belong to the data mart's loader, not to the exports.
IF OBJECT_ID(N'dbo.healthpro', N'U') IS NULL
CREATE TABLE dbo.healthpro (
    etl_row_id                                            bigint IDENTITY(1, 1) NOT NULL CONSTRAINT pk_healthpro PRIMARY KEY,
    [PMI ID]                                              varchar(20) NOT NULL,
    [Biobank ID]                                          varchar(20) NULL,
    [Last Name]                                           nvarchar(100) NULL,
    [First Name]                                          nvarchar(100) NULL,
    [Date of Birth]                                       date NULL,
    [Language]                                            varchar(40) NULL,
    [Participant Status]                                  varchar(60) NULL,
    [General Consent Status]                              smallint NULL,
    [General Consent Date]                                date NULL,
    [EHR Consent Status]                                  smallint NULL,
    [EHR Consent Date]                                    date NULL,
    [gROR Consent Status]                                 smallint NULL,
    [gROR Consent Date]                                   date NULL,
    [Withdrawal Status]                                   smallint NULL,
    [Withdrawal Date]                                     date NULL,
    [Street Address]                                      nvarchar(200) NULL,
    [City]                                                nvarchar(100) NULL,
    [State]                                               varchar(20) NULL,
    [ZIP]                                                 varchar(10) NULL,
    [Email]                                               nvarchar(254) NULL,
    [Phone]                                               varchar(40) NULL,
    [Sex]                                                 varchar(40) NULL,
    [Gender Identity]                                     varchar(100) NULL,
    [Race/Ethnicity]                                      varchar(100) NULL,
    [Paired Site]                                         varchar(100) NULL,
    [Paired Organization]                                 varchar(100) NULL,
    [Basics PPI Survey Completion Date]                   date NULL,
    [Health PPI Survey Completion Date]                   date NULL,
    [Lifestyle PPI Survey Completion Date]                date NULL,
    [Hist PPI Survey Completion Date]                     date NULL,
    [Access PPI Survey Completion Date]                   date NULL,
    [Family PPI Survey Completion Date]                   date NULL,
    [Personal Medical History PPI Survey Completion Date] date NULL,
    [COPE May PPI Survey Completion Date]                 date NULL,
    [COPE June PPI Survey Completion Date]                date NULL,
    [COPE July PPI Survey Completion Date]                date NULL,
    [Physical Measurements Completion Date]               date NULL,
    [Samples for DNA Received]                            smallint NULL,
    [8 mL SST Collection Date]                            date NULL,
    [8 mL PST Collection Date]                            date NULL,
    [4 mL Na-Hep Collection Date]                         date NULL,
    [4 mL EDTA Collection Date]                           date NULL,
    [1st 10 mL EDTA Collection Date]                      date NULL,
    [2nd 10 mL EDTA Collection Date]                      date NULL,
    [Saliva Collection Date]                              date NULL,
    [Urine 10 mL Collection Date]                         date NULL,
    [2 mL EDTA Collection Date]                           date NULL,
    [Cell-Free DNA Collection Date]                       date NULL,
    [Paxgene RNA Collection Date]                         date NULL,
    [Urine 90 mL Collection Date]                         date NULL,
    [DV Enrollment]                                       smallint NULL,
    etl_loaded_at                                         datetime2(0) NOT NULL CONSTRAINT df_healthpro_loaded_at DEFAULT SYSUTCDATETIME()
);
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_healthpro_pmi_id' AND object_id = OBJECT_ID(N'dbo.healthpro'))
CREATE INDEX ix_healthpro_pmi_id ON dbo.healthpro ([PMI ID], etl_loaded_at, etl_row_id);
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_healthpro_loaded_at' AND object_id = OBJECT_ID(N'dbo.healthpro'))
CREATE INDEX ix_healthpro_loaded_at ON dbo.healthpro (etl_loaded_at);
GO
IF OBJECT_ID(N'dbo.redcap', N'U') IS NULL
CREATE TABLE dbo.redcap (
    record_id                                             int NOT NULL CONSTRAINT pk_redcap PRIMARY KEY,
    pmi_id                                                varchar(20) NULL,
    org                                                   varchar(60) NULL,
    aou_enroller                                          varchar(20) NULL,
    spec_provider                                         nvarchar(200) NULL,
    other_details                                         nvarchar(500) NULL,
    tech_asst                                             smallint NULL,
    learn_aou                                             nvarchar(200) NULL,
    tech_asst_other                                       nvarchar(500) NULL,
    clinical_outreach_name                                nvarchar(200) NULL,
    pmi_key                                               AS CAST(UPPER(LTRIM(RTRIM(pmi_id))) AS varchar(20)) PERSISTED,
    etl_loaded_at                                         datetime2(0) NOT NULL CONSTRAINT df_redcap_loaded_at DEFAULT SYSUTCDATETIME()
);
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'ix_redcap_pmi_key' AND object_id = OBJECT_ID(N'dbo.redcap'))
CREATE INDEX ix_redcap_pmi_key ON dbo.redcap (pmi_key, record_id);
GO
