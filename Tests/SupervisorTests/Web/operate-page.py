"""Drives the supervisor's web page in Debian's Chromium (headless, through selenium and
chromedriver), as a person would: signs in with a token, waits for the pending approval,
and either clicks Approve or reports why the button is disabled. Prints one JSON object.

usage: operate-page.py URL TOKEN REQUEST-ID approve|look SCREENSHOT.png
"""
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

url, token, request, mode, screenshot = sys.argv[1:6]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
result = {}
try:
    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "enter a token"))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "who"), "("))
    button = wait.until(ready.presence_of_element_located((By.ID, f"approve-{request}")))
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("live"))
    wait.until(lambda d: d.find_element(By.ID, "panel").get_attribute("src").startswith("blob:"))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#readings tr")) > 0)
    result["who"] = driver.find_element(By.ID, "who").text
    result["disabled"] = not button.is_enabled()
    result["title"] = button.get_attribute("title")
    result["readings"] = len(driver.find_elements(By.CSS_SELECTOR, "#readings tr"))
    driver.save_screenshot(screenshot)
    if mode == "approve" and button.is_enabled():
        button.click()
        wait.until(lambda d: d.find_element(By.ID, "answer").text != "")
        result["answer"] = driver.find_element(By.ID, "answer").text
finally:
    driver.quit()
print(json.dumps(result))
