-- vw_reporting_base: one row per participant, HealthPro columns suffixed _HP, REDCap
-- columns suffixed _RC (the convention of dm_aou's reporting base, which the seed read).
-- A participant loaded more than once keeps the latest load (etl_loaded_at, then etl_row_id);
-- a participant with several REDCap records keeps the highest record_id; REDCap joins on
-- pmi_key, its trimmed upper-case PMI ID. "Latest" is written as NOT EXISTS (a newer row),
-- not ROW_NUMBER() = 1: planners estimate an anti-join well, while a filter on a window
-- function's result is guessed at 0.5% and led PostgreSQL into a quadratic nested loop.
CREATE VIEW vw_reporting_base AS
SELECT
    h."PMI ID" AS "PMI ID_HP",
    h."Biobank ID" AS "Biobank ID_HP",
    h."Last Name" AS "Last Name_HP",
    h."First Name" AS "First Name_HP",
    h."Date of Birth" AS "Date of Birth_HP",
    h."Language" AS "Language_HP",
    h."Participant Status" AS "Participant Status_HP",
    h."General Consent Status" AS "General Consent Status_HP",
    h."General Consent Date" AS "General Consent Date_HP",
    h."EHR Consent Status" AS "EHR Consent Status_HP",
    h."EHR Consent Date" AS "EHR Consent Date_HP",
    h."gROR Consent Status" AS "gROR Consent Status_HP",
    h."gROR Consent Date" AS "gROR Consent Date_HP",
    h."Withdrawal Status" AS "Withdrawal Status_HP",
    h."Withdrawal Date" AS "Withdrawal Date_HP",
    h."Street Address" AS "Street Address_HP",
    h."City" AS "City_HP",
    h."State" AS "State_HP",
    h."ZIP" AS "ZIP_HP",
    h."Email" AS "Email_HP",
    h."Phone" AS "Phone_HP",
    h."Sex" AS "Sex_HP",
    h."Gender Identity" AS "Gender Identity_HP",
    h."Race/Ethnicity" AS "Race/Ethnicity_HP",
    h."Paired Site" AS "Paired Site_HP",
    h."Paired Organization" AS "Paired Organization_HP",
    h."Basics PPI Survey Completion Date" AS "Basics PPI Survey Completion Date_HP",
    h."Health PPI Survey Completion Date" AS "Health PPI Survey Completion Date_HP",
    h."Lifestyle PPI Survey Completion Date" AS "Lifestyle PPI Survey Completion Date_HP",
    h."Hist PPI Survey Completion Date" AS "Hist PPI Survey Completion Date_HP",
    h."Access PPI Survey Completion Date" AS "Access PPI Survey Completion Date_HP",
    h."Family PPI Survey Completion Date" AS "Family PPI Survey Completion Date_HP",
    h."Personal Medical History PPI Survey Completion Date" AS "Personal Medical History PPI Survey Completion Date_HP",
    h."COPE May PPI Survey Completion Date" AS "COPE May PPI Survey Completion Date_HP",
    h."COPE June PPI Survey Completion Date" AS "COPE June PPI Survey Completion Date_HP",
    h."COPE July PPI Survey Completion Date" AS "COPE July PPI Survey Completion Date_HP",
    h."Physical Measurements Completion Date" AS "Physical Measurements Completion Date_HP",
    h."Samples for DNA Received" AS "Samples for DNA Received_HP",
    h."8 mL SST Collection Date" AS "8 mL SST Collection Date_HP",
    h."8 mL PST Collection Date" AS "8 mL PST Collection Date_HP",
    h."4 mL Na-Hep Collection Date" AS "4 mL Na-Hep Collection Date_HP",
    h."4 mL EDTA Collection Date" AS "4 mL EDTA Collection Date_HP",
    h."1st 10 mL EDTA Collection Date" AS "1st 10 mL EDTA Collection Date_HP",
    h."2nd 10 mL EDTA Collection Date" AS "2nd 10 mL EDTA Collection Date_HP",
    h."Saliva Collection Date" AS "Saliva Collection Date_HP",
    h."Urine 10 mL Collection Date" AS "Urine 10 mL Collection Date_HP",
    h."2 mL EDTA Collection Date" AS "2 mL EDTA Collection Date_HP",
    h."Cell-Free DNA Collection Date" AS "Cell-Free DNA Collection Date_HP",
    h."Paxgene RNA Collection Date" AS "Paxgene RNA Collection Date_HP",
    h."Urine 90 mL Collection Date" AS "Urine 90 mL Collection Date_HP",
    h."DV Enrollment" AS "DV Enrollment_HP",
    h.etl_loaded_at AS "etl_loaded_at_HP",
    r.record_id AS "record_id_RC",
    r.pmi_id AS "pmi_id_RC",
    r.org AS "org_RC",
    r.aou_enroller AS "aou_enroller_RC",
    r.spec_provider AS "spec_provider_RC",
    r.other_details AS "other_details_RC",
    r.tech_asst AS "tech_asst_RC",
    r.learn_aou AS "learn_aou_RC",
    r.tech_asst_other AS "tech_asst_other_RC",
    r.clinical_outreach_name AS "clinical_outreach_name_RC"
FROM healthpro AS h
LEFT JOIN redcap AS r
    ON r.pmi_key = h."PMI ID"
    AND NOT EXISTS (
        SELECT 1
        FROM redcap AS newer_rc
        WHERE newer_rc.pmi_key = r.pmi_key
            AND newer_rc.record_id > r.record_id
    )
WHERE NOT EXISTS (
    SELECT 1
    FROM healthpro AS newer_hp
    WHERE newer_hp."PMI ID" = h."PMI ID"
        AND (
            newer_hp.etl_loaded_at > h.etl_loaded_at
            OR (newer_hp.etl_loaded_at = h.etl_loaded_at AND newer_hp.etl_row_id > h.etl_row_id)
        )
)
