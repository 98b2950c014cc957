-- Features whose distribution moved since the reference training dates (PSI above the warning threshold),
-- with what moved in words.
SELECT feature, kind, round(psi, 3) AS psi, threshold, severe, explanation, reference
FROM drift
WHERE status = 'warning'
ORDER BY psi DESC;
