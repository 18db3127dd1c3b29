// page_test.mjs: clicks through the page of `hyperlora serve` in headless
// Chromium: decodes a scene picked from the lexicon and a scene typed from
// parts, and prints what the page showed as one JSON object on stdout.
//   node page_test.mjs URL SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url);
  // The lexicon fills the scene list, and the first scene is explained.
  await page.waitForSelector("#scene option", { state: "attached", timeout: 15000 });
  await page.waitForSelector("#explain table", { timeout: 15000 });
  result.options = await page.$$eval("#scene option", (os) => os.map((o) => o.value));
  result.adapters = await page.$$eval("#adapters .adapter", (rs) => rs.map((r) => r.dataset.name));
  result.loaded = await page.$$eval("#loaded tr", (rs) => rs.slice(1).map((r) => r.cells[0].textContent));

  const decode = async () => {
    await page.$eval("#output", (o) => delete o.dataset.done);
    await page.click("#decode");
    await page.waitForSelector("#output[data-done='1']", { timeout: 30000 });
    return { text: await page.textContent("#output"), status: await page.textContent("#status") };
  };
  // 1. A scene from the lexicon.
  await page.selectOption("#scene", "Δ21");
  await page.selectOption("#form", "text");
  await page.fill("#maxtok", "30");
  result.lexeme = await decode();
  result.explain = await page.textContent("#explain");
  // 2. A new scene typed from parts.
  await page.check("#mode-parts");
  await page.fill("#parts", "кот дом тишина");
  await page.dispatchEvent("#parts", "change");
  result.typed = await decode();
  await page.waitForFunction(() => document.querySelector("#explain").textContent.includes("typed"));
  result.typed_explain = await page.textContent("#explain");
  result.errors = errors;
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
