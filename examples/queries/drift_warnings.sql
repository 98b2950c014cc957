-- Features whose distribution moved since training (PSI above the warning threshold).
SELECT feature, kind, round(psi, 3) AS psi, threshold
FROM drift
WHERE status = 'warning'
ORDER BY psi DESC;
