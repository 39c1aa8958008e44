-- Contacts of one paired organisation. Bound parameters: paired_organization (the filter)
-- and account_id (the Contact's AccountId). The seed hard-coded both in its view; here the
-- DAG passes them from its Params, so the source database stays read-only for the sync.
-- (No parameter markers in comments: a driver would count them.)
SELECT
    c."HP_PMI_ID__c",
    c."LastName",
    c."FirstName",
    c."Birthdate",
    c."MailingStreet",
    c."MailingCity",
    CAST(:account_id AS VARCHAR(18)) AS "AccountId",
    c."MailingState",
    c."MailingPostalCode",
    c."Email",
    c."Phone",
    c."HP_Sex__c",
    c."HP_Gender_Identity__c",
    c."HP_Race_Ethnicity__c",
    c."CH_All_of_Us_Enroller_UNI__c",
    c."CH_REDCap_Record_ID__c",
    c."CH_Specify_Health_Care_Provider__c",
    c."CH_Other_details__c",
    c."CH_Technical_Assistance_Required__c",
    c."CH_How_did_contact_learn_about_AoU__c",
    c."CH_Other_technical_assistance_details__c",
    c."CH_Specify_clinical_outreach__c",
    c."HP_Language__c",
    c."DV_Enrollment__c",
    c.withdrawn
FROM aou_contact_source AS c
WHERE c.paired_organization = :paired_organization
