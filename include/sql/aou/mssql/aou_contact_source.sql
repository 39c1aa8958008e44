-- aou_contact_source: one row per participant in Salesforce Contact API names (all paired
-- organisations; the query in contacts.sql filters one and adds the configured AccountId).
-- Rules (crm_sync.integrations.aou.transforms states the same rules in Python and the tests
-- hold the two together): text NULL -> '' and trimmed; dates yyyy-mm-dd with 1900-01-01 -> '';
-- state code -> full upper-case name, unknown -> ''; email trimmed and lower-cased; phone ->
-- '(NPA) NXX-XXXX' for a North American number, else ''; flags 1/0; REDCap NULL -> ''.
-- Extra columns for the DAG, not Salesforce fields: withdrawn (1/0), paired_organization.
-- Phone, step 1: drop the separators ' -().+/'; step 2: drop a leading country code 1 from
-- eleven digits; step 3 (below): ten digits, nothing else, area code and exchange 2-9.
CREATE OR ALTER VIEW dbo.aou_contact_source AS
SELECT
    p.[PMI ID_HP] AS [HP_PMI_ID__c],
    LTRIM(RTRIM(COALESCE(p.[Last Name_HP], ''))) AS [LastName],
    LTRIM(RTRIM(COALESCE(p.[First Name_HP], ''))) AS [FirstName],
    CASE WHEN p.[Date of Birth_HP] IS NULL OR p.[Date of Birth_HP] = '1900-01-01' THEN '' ELSE CONVERT(varchar(10), p.[Date of Birth_HP], 23) END AS [Birthdate],
    LTRIM(RTRIM(COALESCE(p.[Street Address_HP], ''))) AS [MailingStreet],
    LTRIM(RTRIM(COALESCE(p.[City_HP], ''))) AS [MailingCity],
    CASE UPPER(LTRIM(RTRIM(COALESCE(p.[State_HP], ''))))
            WHEN 'AA' THEN 'ARMED FORCES AMERICAS'
            WHEN 'AE' THEN 'ARMED FORCES EUROPE'
            WHEN 'AK' THEN 'ALASKA'
            WHEN 'AL' THEN 'ALABAMA'
            WHEN 'AP' THEN 'ARMED FORCES PACIFIC'
            WHEN 'AR' THEN 'ARKANSAS'
            WHEN 'AS' THEN 'AMERICAN SAMOA'
            WHEN 'AZ' THEN 'ARIZONA'
            WHEN 'CA' THEN 'CALIFORNIA'
            WHEN 'CO' THEN 'COLORADO'
            WHEN 'CT' THEN 'CONNECTICUT'
            WHEN 'DC' THEN 'DISTRICT OF COLUMBIA'
            WHEN 'DE' THEN 'DELAWARE'
            WHEN 'FL' THEN 'FLORIDA'
            WHEN 'FM' THEN 'FEDERATED STATES OF MICRONESIA'
            WHEN 'GA' THEN 'GEORGIA'
            WHEN 'GU' THEN 'GUAM'
            WHEN 'HI' THEN 'HAWAII'
            WHEN 'IA' THEN 'IOWA'
            WHEN 'ID' THEN 'IDAHO'
            WHEN 'IL' THEN 'ILLINOIS'
            WHEN 'IN' THEN 'INDIANA'
            WHEN 'KS' THEN 'KANSAS'
            WHEN 'KY' THEN 'KENTUCKY'
            WHEN 'LA' THEN 'LOUISIANA'
            WHEN 'MA' THEN 'MASSACHUSETTS'
            WHEN 'MD' THEN 'MARYLAND'
            WHEN 'ME' THEN 'MAINE'
            WHEN 'MH' THEN 'MARSHALL ISLANDS'
            WHEN 'MI' THEN 'MICHIGAN'
            WHEN 'MN' THEN 'MINNESOTA'
            WHEN 'MO' THEN 'MISSOURI'
            WHEN 'MP' THEN 'NORTHERN MARIANA ISLANDS'
            WHEN 'MS' THEN 'MISSISSIPPI'
            WHEN 'MT' THEN 'MONTANA'
            WHEN 'NC' THEN 'NORTH CAROLINA'
            WHEN 'ND' THEN 'NORTH DAKOTA'
            WHEN 'NE' THEN 'NEBRASKA'
            WHEN 'NH' THEN 'NEW HAMPSHIRE'
            WHEN 'NJ' THEN 'NEW JERSEY'
            WHEN 'NM' THEN 'NEW MEXICO'
            WHEN 'NV' THEN 'NEVADA'
            WHEN 'NY' THEN 'NEW YORK'
            WHEN 'OH' THEN 'OHIO'
            WHEN 'OK' THEN 'OKLAHOMA'
            WHEN 'OR' THEN 'OREGON'
            WHEN 'PA' THEN 'PENNSYLVANIA'
            WHEN 'PR' THEN 'PUERTO RICO'
            WHEN 'PW' THEN 'PALAU'
            WHEN 'RI' THEN 'RHODE ISLAND'
            WHEN 'SC' THEN 'SOUTH CAROLINA'
            WHEN 'SD' THEN 'SOUTH DAKOTA'
            WHEN 'TN' THEN 'TENNESSEE'
            WHEN 'TX' THEN 'TEXAS'
            WHEN 'UT' THEN 'UTAH'
            WHEN 'VA' THEN 'VIRGINIA'
            WHEN 'VI' THEN 'VIRGIN ISLANDS'
            WHEN 'VT' THEN 'VERMONT'
            WHEN 'WA' THEN 'WASHINGTON'
            WHEN 'WI' THEN 'WISCONSIN'
            WHEN 'WV' THEN 'WEST VIRGINIA'
            WHEN 'WY' THEN 'WYOMING'
            ELSE ''
    END AS [MailingState],
    LTRIM(RTRIM(COALESCE(p.[ZIP_HP], ''))) AS [MailingPostalCode],
    LOWER(LTRIM(RTRIM(COALESCE(p.[Email_HP], '')))) AS [Email],
    CASE
        WHEN LEN(p.phone_digits) = 10
            AND REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(p.phone_digits, '0', ''), '1', ''), '2', ''), '3', ''), '4', ''), '5', ''), '6', ''), '7', ''), '8', ''), '9', '') = ''
            AND SUBSTRING(p.phone_digits, 1, 1) NOT IN ('0', '1')
            AND SUBSTRING(p.phone_digits, 4, 1) NOT IN ('0', '1')
        THEN CONCAT('(', SUBSTRING(p.phone_digits, 1, 3), ') ', SUBSTRING(p.phone_digits, 4, 3), '-', SUBSTRING(p.phone_digits, 7, 4))
        ELSE ''
    END AS [Phone],
    LTRIM(RTRIM(COALESCE(p.[Sex_HP], ''))) AS [HP_Sex__c],
    LTRIM(RTRIM(COALESCE(p.[Gender Identity_HP], ''))) AS [HP_Gender_Identity__c],
    LTRIM(RTRIM(COALESCE(p.[Race/Ethnicity_HP], ''))) AS [HP_Race_Ethnicity__c],
    LTRIM(RTRIM(COALESCE(p.[aou_enroller_RC], ''))) AS [CH_All_of_Us_Enroller_UNI__c],
    CASE WHEN p.[record_id_RC] IS NULL THEN '' ELSE CONVERT(varchar(20), p.[record_id_RC]) END AS [CH_REDCap_Record_ID__c],
    LTRIM(RTRIM(COALESCE(p.[spec_provider_RC], ''))) AS [CH_Specify_Health_Care_Provider__c],
    LTRIM(RTRIM(COALESCE(p.[other_details_RC], ''))) AS [CH_Other_details__c],
    CASE WHEN p.[tech_asst_RC] IS NULL THEN '' WHEN p.[tech_asst_RC] = 1 THEN '1' ELSE '0' END AS [CH_Technical_Assistance_Required__c],
    LTRIM(RTRIM(COALESCE(p.[learn_aou_RC], ''))) AS [CH_How_did_contact_learn_about_AoU__c],
    LTRIM(RTRIM(COALESCE(p.[tech_asst_other_RC], ''))) AS [CH_Other_technical_assistance_details__c],
    LTRIM(RTRIM(COALESCE(p.[clinical_outreach_name_RC], ''))) AS [CH_Specify_clinical_outreach__c],
    LTRIM(RTRIM(COALESCE(p.[Language_HP], ''))) AS [HP_Language__c],
    CASE WHEN p.[DV Enrollment_HP] = 1 THEN 1 ELSE 0 END AS [DV_Enrollment__c],
    CASE WHEN p.[Withdrawal Status_HP] = 1 THEN 1 ELSE 0 END AS withdrawn,
    LTRIM(RTRIM(COALESCE(p.[Paired Organization_HP], ''))) AS paired_organization
FROM (
    SELECT
        s.*,
        CASE
            WHEN LEN(s.phone_stripped) = 11 AND SUBSTRING(s.phone_stripped, 1, 1) = '1'
            THEN SUBSTRING(s.phone_stripped, 2, 10)
            ELSE s.phone_stripped
        END AS phone_digits
    FROM (
        SELECT
            b.*,
            REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(COALESCE(b.[Phone_HP], ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''), '+', ''), '/', '') AS phone_stripped
        FROM dbo.vw_reporting_base AS b
    ) AS s
) AS p
