-- aou_journey_source: one row per participant in Salesforce Opportunity ("journey") API
-- names, keyed by HP_PMI_ID__c (all paired organisations; journeys.sql filters one).
-- Biospecimen fields use HealthPro's sample codes (1SST8 = 8 mL SST ...). The 2 mL EDTA,
-- cell-free DNA, PAXgene RNA and 90 mL urine dates have no Opportunity field: not extracted.
-- Rules as in aou_contact_source: dates yyyy-mm-dd with 1900-01-01 -> '', flags 1/0, text
-- NULL -> ''. Extra column for the DAG: paired_organization.
CREATE OR ALTER VIEW dbo.aou_journey_source AS
SELECT
    b.[PMI ID_HP] AS [HP_PMI_ID__c],
    LTRIM(RTRIM(COALESCE(b.[Participant Status_HP], ''))) AS [HP_Participant_Status__c],
    CASE WHEN b.[General Consent Status_HP] = 1 THEN 1 ELSE 0 END AS [HP_General_Consent_Status__c],
    CASE WHEN b.[General Consent Date_HP] IS NULL OR b.[General Consent Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[General Consent Date_HP], 23) END AS [HP_General_Consent_Date__c],
    CASE WHEN b.[EHR Consent Status_HP] = 1 THEN 1 ELSE 0 END AS [HP_EHR_Consent_Status__c],
    CASE WHEN b.[EHR Consent Date_HP] IS NULL OR b.[EHR Consent Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[EHR Consent Date_HP], 23) END AS [HP_EHR_Consent_Date__c],
    CASE WHEN b.[gROR Consent Status_HP] = 1 THEN 1 ELSE 0 END AS [HP_gROR_Consent_Status__c],
    CASE WHEN b.[gROR Consent Date_HP] IS NULL OR b.[gROR Consent Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[gROR Consent Date_HP], 23) END AS [HP_gROR_Consent_Date__c],
    CASE WHEN b.[Withdrawal Date_HP] IS NULL OR b.[Withdrawal Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Withdrawal Date_HP], 23) END AS [HP_Withdrawal_Date__c],
    CASE WHEN b.[Withdrawal Status_HP] = 1 THEN 1 ELSE 0 END AS [HP_Withdrawal_Status__c],
    CASE WHEN b.[Basics PPI Survey Completion Date_HP] IS NULL OR b.[Basics PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Basics PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Basics_Date__c],
    CASE WHEN b.[Health PPI Survey Completion Date_HP] IS NULL OR b.[Health PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Health PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Overall_Health_Date__c],
    CASE WHEN b.[Lifestyle PPI Survey Completion Date_HP] IS NULL OR b.[Lifestyle PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Lifestyle PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Lifestyle_Date__c],
    CASE WHEN b.[Hist PPI Survey Completion Date_HP] IS NULL OR b.[Hist PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Hist PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Medical_History_Date__c],
    CASE WHEN b.[Access PPI Survey Completion Date_HP] IS NULL OR b.[Access PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Access PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Health_Care_Access_Date__c],
    CASE WHEN b.[Family PPI Survey Completion Date_HP] IS NULL OR b.[Family PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Family PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Family_Health_Date__c],
    CASE WHEN b.[Personal Medical History PPI Survey Completion Date_HP] IS NULL OR b.[Personal Medical History PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Personal Medical History PPI Survey Completion Date_HP], 23) END AS [HP_PPI_Personal_Medical_History_Date__c],
    CASE WHEN b.[COPE May PPI Survey Completion Date_HP] IS NULL OR b.[COPE May PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[COPE May PPI Survey Completion Date_HP], 23) END AS [HP_PPI_COPE_May_Date__c],
    CASE WHEN b.[COPE June PPI Survey Completion Date_HP] IS NULL OR b.[COPE June PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[COPE June PPI Survey Completion Date_HP], 23) END AS [HP_PPI_COPE_June_Date__c],
    CASE WHEN b.[COPE July PPI Survey Completion Date_HP] IS NULL OR b.[COPE July PPI Survey Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[COPE July PPI Survey Completion Date_HP], 23) END AS [HP_PPI_COPE_July_Date__c],
    CASE WHEN b.[Physical Measurements Completion Date_HP] IS NULL OR b.[Physical Measurements Completion Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Physical Measurements Completion Date_HP], 23) END AS [HP_Physical_Measurements_Completion_Date__c],
    CASE WHEN b.[Samples for DNA Received_HP] = 1 THEN 1 ELSE 0 END AS [HP_Samples_for_DNA_Received__c],
    CASE WHEN b.[8 mL SST Collection Date_HP] IS NULL OR b.[8 mL SST Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[8 mL SST Collection Date_HP], 23) END AS [HP_1SST8_Collection_Date__c],
    CASE WHEN b.[8 mL PST Collection Date_HP] IS NULL OR b.[8 mL PST Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[8 mL PST Collection Date_HP], 23) END AS [HP_1PST8_Collection_Date__c],
    CASE WHEN b.[4 mL Na-Hep Collection Date_HP] IS NULL OR b.[4 mL Na-Hep Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[4 mL Na-Hep Collection Date_HP], 23) END AS [HP_1HEP4_Collection_Date__c],
    CASE WHEN b.[4 mL EDTA Collection Date_HP] IS NULL OR b.[4 mL EDTA Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[4 mL EDTA Collection Date_HP], 23) END AS [HP_1ED04_Collection_Date__c],
    CASE WHEN b.[1st 10 mL EDTA Collection Date_HP] IS NULL OR b.[1st 10 mL EDTA Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[1st 10 mL EDTA Collection Date_HP], 23) END AS [HP_1ED10_Collection_Date__c],
    CASE WHEN b.[2nd 10 mL EDTA Collection Date_HP] IS NULL OR b.[2nd 10 mL EDTA Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[2nd 10 mL EDTA Collection Date_HP], 23) END AS [HP_2ED10_Collection_Date__c],
    CASE WHEN b.[Urine 10 mL Collection Date_HP] IS NULL OR b.[Urine 10 mL Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Urine 10 mL Collection Date_HP], 23) END AS [HP_1UR10_Collection_Date__c],
    CASE WHEN b.[Saliva Collection Date_HP] IS NULL OR b.[Saliva Collection Date_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), b.[Saliva Collection Date_HP], 23) END AS [HP_1SAL_Collection_Date__c],
    LTRIM(RTRIM(COALESCE(b.[Paired Organization_HP], ''))) AS paired_organization
FROM dbo.vw_reporting_base AS b
